#!/usr/bin/env bash
# Download the CIFAR-10 binary version and unpack it for cifar10-to-h5.
#
#   data_tools/fetch_cifar10.sh DIR                   download, verify, unpack into DIR
#   data_tools/fetch_cifar10.sh DIR --archive FILE    use a cifar-10-binary.tar.gz you already have
#
# DIR gets data_batch_1.bin .. data_batch_5.bin, test_batch.bin and
# batches.meta.txt. The archive must have the MD5 published on the CIFAR-10
# page, c32a1d4ab5d03f1284b67883e8d87530. EFFNET_CIFAR10_URL overrides the
# download address (a mirror, or file:// for tests).
set -euo pipefail

URL=${EFFNET_CIFAR10_URL:-https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz}
MD5=c32a1d4ab5d03f1284b67883e8d87530
FILES="data_batch_1.bin data_batch_2.bin data_batch_3.bin data_batch_4.bin data_batch_5.bin test_batch.bin batches.meta.txt"

die() { echo "fetch_cifar10: error: $*" >&2; exit 1; }
by_hand() {
  cat >&2 <<EOT
HINT: to supply the files by hand, on a machine with internet access download
        $URL
      (the CIFAR-10 binary version, 162 MB), check that 'md5sum cifar-10-binary.tar.gz'
      prints $MD5, copy it here and run
        $0 $out --archive /path/to/cifar-10-binary.tar.gz
      or unpack it yourself and pass its cifar-10-batches-bin directory to cifar10-to-h5 --input.
EOT
}

out=${1:-}
[ -n "$out" ] && [ "${out#-}" = "$out" ] || die "usage: fetch_cifar10.sh DIR [--archive cifar-10-binary.tar.gz]"
shift
archive=
while [ $# -gt 0 ]; do
  case $1 in
    --archive) [ $# -ge 2 ] || die "--archive needs a file"; archive=$2; shift 2 ;;
    *) die "unknown argument '$1'" ;;
  esac
done

have_all=1
for f in $FILES; do [ -f "$out/$f" ] || have_all=0; done
if [ $have_all = 1 ]; then echo "fetch_cifar10: $out already holds the CIFAR-10 binary files"; exit 0; fi

mkdir -p "$out" || die "cannot create '$out'"
tmp=$(mktemp -d "$out/.fetch.XXXXXX") || die "cannot write into '$out'"
trap 'rm -rf "$tmp"' EXIT

if [ -z "$archive" ]; then
  archive=$tmp/cifar-10-binary.tar.gz
  echo "fetch_cifar10: downloading $URL"
  if command -v curl >/dev/null 2>&1; then
    curl -fL --connect-timeout 20 --retry 2 -o "$archive" "$URL" || { echo "fetch_cifar10: error: cannot download $URL (offline?)" >&2; by_hand; exit 1; }
  elif command -v wget >/dev/null 2>&1; then
    wget -q --timeout=20 --tries=2 -O "$archive" "$URL" || { echo "fetch_cifar10: error: cannot download $URL (offline?)" >&2; by_hand; exit 1; }
  else
    echo "fetch_cifar10: error: neither curl nor wget is installed" >&2; by_hand; exit 1
  fi
fi
[ -f "$archive" ] || die "archive '$archive' does not exist"
got=$(md5sum "$archive" | cut -d' ' -f1) || die "cannot read '$archive'"
if [ "$got" != "$MD5" ]; then
  echo "fetch_cifar10: error: '$archive' has MD5 $got, expected $MD5 (a damaged or different download)" >&2
  by_hand; exit 1
fi
tar -xzf "$archive" -C "$tmp" || die "cannot unpack '$archive'"
for f in $FILES; do
  [ -f "$tmp/cifar-10-batches-bin/$f" ] || die "'$archive' lacks cifar-10-batches-bin/$f"
done
for f in $FILES; do mv -f "$tmp/cifar-10-batches-bin/$f" "$out/$f"; done
echo "fetch_cifar10: CIFAR-10 binary files are in $out; next: cifar10-to-h5 --input $out --output OUT --shards N"
