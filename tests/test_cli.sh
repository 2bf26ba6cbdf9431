#!/usr/bin/env bash
# Bad input to the command line: one line on stderr naming the option, exit 2.
set -u
bin="$1"
passed=0
failed=0

expect_error() {  # expect_error "what it must say" args...
  local want="$1"
  shift
  local err rc
  err=$("$bin" "$@" 2>&1 >/dev/null)
  rc=$?
  if [ "$rc" -ne 2 ]; then
    echo "FAIL: boundbench $* exited $rc, expected 2"; failed=$((failed + 1)); return
  fi
  if [ "$(printf '%s\n' "$err" | wc -l)" -ne 1 ]; then
    echo "FAIL: boundbench $*: expected one line, got: $err"; failed=$((failed + 1)); return
  fi
  case "$err" in
    *"$want"*) echo "ok: boundbench $* -> $err"; passed=$((passed + 1)) ;;
    *) echo "FAIL: boundbench $*: '$err' lacks '$want'"; failed=$((failed + 1)) ;;
  esac
}

expect_error "unknown command 'frobnicate'" frobnicate
expect_error "unknown data set 'imagenet' (valid: mnist, fashion-mnist, cifar10)" data --dataset imagenet
expect_error "unknown split 'dev'" data --dataset mnist --split dev
expect_error "--dataset" data
expect_error "unrecognised option '--bogus'" data --dataset mnist --bogus
empty=$(mktemp -d)
expect_error "not found; fetch it with" data --dataset mnist --data-dir "$empty"
rmdir "$empty"

echo "cli tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
