#!/usr/bin/env bash
# How docs/operating.md's install sizes were measured: fresh Debian 12 minbase
# chroots (debootstrap, as root, needs deb.debian.org), then
# .ci/install-deps.sh runtime / test in each; results to /tmp/install-measure.txt.
set -euo pipefail
out=/tmp/install-measure.txt
: > $out
base=/tmp/chroot-base
if [ ! -f /tmp/chroot-base.tar ]; then
  rm -rf $base
  debootstrap --variant=minbase bookworm $base http://deb.debian.org/debian > /tmp/debootstrap.log 2>&1
  echo "deb http://deb.debian.org/debian-security bookworm-security main" >> $base/etc/apt/sources.list
  tar -C $base -cf /tmp/chroot-base.tar .
fi
for set in runtime test; do
  root=/tmp/chroot-$set; rm -rf $root; mkdir -p $root; tar -C $root -xf /tmp/chroot-base.tar
  mkdir -p $root/src/.ci; cp "$(cd "$(dirname "$0")/.." && pwd)/.ci/install-deps.sh" $root/src/.ci/
  mount --bind /proc $root/proc
  before=$(du -sxm $root | cut -f1)
  t0=$(date +%s)
  chroot $root bash /src/.ci/install-deps.sh $set > /tmp/install-$set.log 2>&1 || echo "FAILED $set" >> $out
  t1=$(date +%s)
  chroot $root apt-get clean
  after=$(du -sxm $root | cut -f1)
  npk=$(chroot $root dpkg-query -W | wc -l)
  umount $root/proc
  echo "$set: $((t1-t0)) s, +$((after-before)) MiB installed (apt cache cleaned), $npk packages in the chroot (base $(tar -tf /tmp/chroot-base.tar | grep -c '^./var/lib/dpkg/info/.*\.list$'))" >> $out
done
echo done >> $out
