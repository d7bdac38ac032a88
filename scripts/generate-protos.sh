#!/usr/bin/env bash
# Regenerates Sources/EvalForgeOTLP/Generated from Protos/ with Debian's protoc and protoc-gen-swift
# built from the swift-protobuf version this package resolves (so the runtime check matches).
# Idempotent: running it twice leaves `git diff` clean. The generated code is committed.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v protoc >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq protobuf-compiler
fi
swift package resolve >/dev/null
swift build -c release --product protoc-gen-swift --package-path .build/checkouts/swift-protobuf --scratch-path .build-protoc >/dev/null
plugin=.build-protoc/release/protoc-gen-swift

out=Sources/EvalForgeOTLP/Generated
rm -rf "$out"
mkdir -p "$out"
protos=$(cd Protos && find . -name '*.proto' | sed 's|^\./||' | sort)
(cd Protos && protoc --plugin=protoc-gen-swift="../$plugin" \
  --swift_out=../"$out" \
  --swift_opt=Visibility=Public \
  --swift_opt=FileNaming=PathToUnderscores \
  $protos)
echo "generated: $(ls "$out" | tr '\n' ' ')"
