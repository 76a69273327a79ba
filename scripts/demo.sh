#!/usr/bin/env bash
# demo.sh — make an OCI bundle from busybox and run it with sampan-runtime;
# then bootstrap the busybox image into the store; then start `sampan daemon`
# (unless it runs), list the image and run it through the daemon (`sampan images`,
# `sampan run`: clients of its API).
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
# (bootstrap works on the store itself, with or without a daemon running on it)
echo "+ sampan image bootstrap busybox"
sampan image bootstrap busybox
# The engine: `sampan daemon` serves the Docker Engine API on /run/sampan/sampan.sock
# (started here in its own session unless one already answers), and `sampan run`
# is its client: create, attach, start, wait -- the same store the bootstrap wrote.
sock=/run/sampan/sampan.sock
if ! sampan -H "unix://$sock" ps -q >/dev/null 2>&1; then
  echo "+ sampan daemon (in the background, log: /var/log/sampan-daemon.log)"
  setsid sampan daemon -H "unix://$sock" </dev/null >>/var/log/sampan-daemon.log 2>&1 &
  deadline=$((SECONDS + 20))
  until sampan -H "unix://$sock" ps -q >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      echo "sampan daemon is not answering on $sock; the end of its log:" >&2
      tail -n 20 /var/log/sampan-daemon.log >&2
      exit 1
    fi
    sleep 0.05
  done
fi
echo "+ sampan images"
sampan -H "unix://$sock" images
echo "+ sampan run --rm busybox ip -4 -o addr show eth0    # on the default bridge, sampan0"
sampan run --rm busybox ip -4 -o addr show eth0
echo "+ sampan run --rm busybox echo hello from a sampan container"
sampan run --rm busybox echo hello from a sampan container
