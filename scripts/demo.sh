#!/usr/bin/env bash
# demo.sh — make an OCI bundle from busybox and run it with sampan-runtime;
# then bootstrap the busybox image into the store and list it.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bundle=${SAMPAN_DEMO_BUNDLE:-/var/tmp/sampan-demo}
rm -rf "$bundle"
mkdir -p "$bundle"
"$here/scripts/busybox-rootfs.sh" "$bundle/rootfs"
sampan-runtime spec --bundle "$bundle"
"$here/.venv/bin/python" - "$bundle/config.json" <<'PY'
import json, sys
path = sys.argv[1]
config = json.load(open(path))
config["process"]["terminal"] = False
config["process"]["args"] = ["sh", "-c",
    "echo hello from sampan; echo hostname: $(hostname); id; echo pid: $$"]
config["process"].pop("rlimits", None)  # keep the host's own limits
json.dump(config, open(path, "w"), indent=2)
PY
echo "+ sampan-runtime run --bundle $bundle demo"
sampan-runtime run --bundle "$bundle" "demo-$$"
# Images: a base image made offline from Debian's busybox-static, in the store.
echo "+ sampan image bootstrap busybox"
sampan image bootstrap busybox
echo "+ sampan images"
sampan images
