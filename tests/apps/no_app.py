"""A file with functions but no rayfn.App, for the CLI's error message."""


def process_job(data):
    return data
