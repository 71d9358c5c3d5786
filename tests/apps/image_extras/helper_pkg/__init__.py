"""A package only the deploying process can import (tests/test_images.py adds its
folder to sys.path there): workers get it through Image.add_local_python_source."""

SHOUT = "from helper_pkg"
