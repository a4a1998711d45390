"""moto's server with S3's atomicity: one S3 request at a time.

S3 performs a conditional write (`If-None-Match: *`, `If-Match: <etag>`) as one step: of two
concurrent writers, one wins and the other gets 412 (or 409). moto 5 checks the precondition,
then stores the object, on a threaded server: two concurrent conditional writes can both pass the
check. Every guarantee of the suite (one notification per key, one export per snapshot, no lost
sweep observation) rests on that atomicity, so the tests cannot use moto's S3 as it is.

This launcher serves moto's own WSGI application with werkzeug, as `moto_server` does, and holds
one lock around each S3 request (reads too, so that a read never sees half of a write): S3 in
the emulator is linearizable. Every other service is served concurrently, as by `moto_server`.

Usage: python moto_server.py [-H HOST] -p PORT
"""

import argparse
import os
import re
import signal
import sys
import threading

from werkzeug.serving import run_simple

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)

# A SigV4 credential scope naming S3: in the Authorization header, or URL-encoded in a presigned
# URL's X-Amz-Credential.
S3_SCOPE = re.compile(r"/s3/aws4_request|%2Fs3%2Faws4_request", re.IGNORECASE)


def is_s3(environ):
    return bool(
        S3_SCOPE.search(environ.get("HTTP_AUTHORIZATION", ""))
        or S3_SCOPE.search(environ.get("QUERY_STRING", ""))
    )


class LinearizableS3:
    """Runs each S3 request whole (its answer read to the end) under one lock."""

    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        if not is_s3(environ):
            return self.app(environ, start_response)
        with self.lock:
            answer = self.app(environ, start_response)
            try:
                return [b"".join(answer)]
            finally:
                close = getattr(answer, "close", None)
                if close is not None:
                    close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, required=True)
    args = parser.parse_args()
    # moto builds some URLs (SQS queues, presigned links) from MOTO_PORT.
    os.environ.setdefault("MOTO_PORT", str(args.port))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(
        args.host,
        args.port,
        LinearizableS3(app),
        threaded=True,
        request_handler=MotoRequestHandler,
    )


if __name__ == "__main__":
    main()
