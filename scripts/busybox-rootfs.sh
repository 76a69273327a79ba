#!/usr/bin/env bash
# busybox-rootfs.sh DIR — a minimal root filesystem from Debian's busybox-static:
# the static binary, one symlink per applet, /etc/passwd and /etc/group.
set -euo pipefail
dir=${1:?usage: busybox-rootfs.sh DIR}
bb=/bin/busybox
if ! dpkg -s busybox-static >/dev/null 2>&1; then
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static >/dev/null
fi
mkdir -p "$dir"/{bin,sbin,etc,proc,sys,dev,tmp,root,var,run,usr/bin,usr/sbin,home}
cp "$bb" "$dir/bin/busybox"
for applet in $("$bb" --list); do
  [ "$applet" = busybox ] || ln -sf busybox "$dir/bin/$applet"
done
chmod 1777 "$dir/tmp"
cat > "$dir/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/home:/bin/false
PASSWD
printf 'root:x:0:\nnogroup:x:65534:\n' > "$dir/etc/group"
