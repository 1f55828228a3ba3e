#!/usr/bin/env python3
"""Generate the omniroute.v1 Python stubs from ../../proto with grpcio-tools.

Writes omniroute/v1/*_pb2.py (messages), *_pb2.pyi (their types) and
*_pb2_grpc.py (service stubs) under --out (default: gen/ next to this file).
The well-known types (google/protobuf/timestamp.proto, ...) come from the
copy grpcio-tools ships, so no protoc install is needed.
"""

import argparse
import pathlib
import shutil
import sys

import grpc_tools
from grpc_tools import protoc

HERE = pathlib.Path(__file__).resolve().parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=pathlib.Path, default=HERE / "gen",
                        help="directory to write the stubs into (default: %(default)s)")
    parser.add_argument("--proto", type=pathlib.Path, default=HERE.parent.parent / "proto",
                        help="the proto root holding omniroute/v1 (default: %(default)s)")
    args = parser.parse_args()

    proto = args.proto.resolve()
    sources = sorted((proto / "omniroute" / "v1").glob("*.proto"))
    if not sources:
        print(f"generate.py: no .proto files in {proto}/omniroute/v1", file=sys.stderr)
        return 1
    out = args.out.resolve()
    # Start clean, so stubs of a removed .proto file do not linger.
    shutil.rmtree(out / "omniroute", ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    well_known = pathlib.Path(grpc_tools.__file__).parent / "_proto"

    status = protoc.main([
        "grpc_tools.protoc",
        f"-I{proto}",
        f"-I{well_known}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
        *(str(source) for source in sources),
    ])
    if status != 0:
        print(f"generate.py: protoc failed (exit {status})", file=sys.stderr)
        return 1
    print(f"generated the stubs of {len(sources)} proto files from {proto} into {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
