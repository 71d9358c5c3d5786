"""Issue 17, item 8, as a Modal user writes it: a Volume mounted into functions and a
class, files written in one call and read in another, and from the client."""

import os
import pathlib

import rayfn as modal

MOUNT = os.environ.get("VOLUME_MOUNT", "/tmp/modal-style-volume/data")

vol = modal.Volume.from_name("modal-style-volume", create_if_missing=True)
# The workers import this file too: the image's env gives them the same mount path.
app = modal.App("modal-style-volumes", image=modal.Image.debian_slim().env({"VOLUME_MOUNT": MOUNT}))


@app.function(volumes={MOUNT: vol})
def write(name: str, text: str) -> list[str]:
    pathlib.Path(MOUNT, name).write_text(text)
    vol.commit()
    return sorted(os.listdir(MOUNT))


@app.function(volumes={MOUNT: vol})
def read(name: str) -> str:
    vol.reload()
    return pathlib.Path(MOUNT, name).read_text()


@app.cls(volumes={MOUNT: vol})
class Reader:
    @modal.enter()
    def load(self) -> None:
        self.seen = pathlib.Path(MOUNT, "uploaded", "note.txt").read_text()

    @modal.method()
    def seen_at_enter(self) -> str:
        return self.seen


@app.local_entrypoint()
def main(note: str) -> None:
    with vol.batch_upload(force=True) as batch:
        batch.put_file(note, "/uploaded/note.txt")
    print("listing:", write.remote("from-call.txt", "written in a call"))
    print("read:", read.remote("from-call.txt"))
    print("client reads:", b"".join(vol.read_file("from-call.txt")).decode())
    print("entries:", [e.path for e in vol.listdir("/", recursive=True)])
    print("enter saw:", Reader().seen_at_enter.remote())
    vol.remove_file("from-call.txt")
    print("after remove:", [e.path for e in vol.listdir("/")])
