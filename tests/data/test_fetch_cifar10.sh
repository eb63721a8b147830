#!/usr/bin/env bash
# data_tools/fetch_cifar10.sh without the network: a download that fails
# (file:// URL to nowhere) and an archive with the wrong MD5 both exit
# non-zero, say how to supply the files by hand, and leave DIR without files.
set -u
script=$1
t=$(mktemp -d); trap 'rm -rf "$t"' EXIT
fail=0
out=$(EFFNET_CIFAR10_URL=file://$t/nowhere/cifar-10-binary.tar.gz bash "$script" "$t/dir" 2>&1); rc=$?
if [ $rc -eq 0 ] || ! grep -q "cannot download" <<<"$out" || ! grep -q -- "--archive" <<<"$out"; then
  echo "FAIL: offline download: rc=$rc output: $out"; fail=1; fi
echo "not a tarball" > "$t/fake.tar.gz"
out=$(bash "$script" "$t/dir" --archive "$t/fake.tar.gz" 2>&1); rc=$?
if [ $rc -eq 0 ] || ! grep -q "expected c32a1d4ab5d03f1284b67883e8d87530" <<<"$out"; then
  echo "FAIL: MD5 mismatch: rc=$rc output: $out"; fail=1; fi
if [ -n "$(ls -A "$t/dir")" ]; then echo "FAIL: files left in DIR: $(ls -A "$t/dir")"; fail=1; fi
[ $fail -eq 0 ] && echo "PASS: fetch_cifar10.sh fails cleanly offline and on a bad archive"
exit $fail
