#!/usr/bin/env bash
# Rebuild the built-in policy modules (account-rbac, tenant-roles) into policies/*.wasm.
#
#   plugins/build.sh          rebuild and copy into policies/
#   plugins/build.sh --check  rebuild into a temporary directory and byte-compare with the
#                             committed policies/*.wasm; exit 1 naming any that differ
#
# Reproducible: the toolchain is pinned (rust-toolchain.toml), dependencies are locked
# (--locked), the `policy` profile builds with one codegen unit, LTO and no debug info,
# and every absolute path that could reach the binary (this checkout, the cargo home, the
# target directory) is remapped to a fixed name, so two checkouts anywhere build the same
# bytes. Each module is also checked to import nothing and to export the ABI v1 functions
# (plugins/inspect_wasm.py). Needs: rustup (scripts/toolchain adds the wasm32 target
# when missing) and python3.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd -P)"
cargo_home="$(cd "${CARGO_HOME:-$HOME/.cargo}" 2>/dev/null && pwd -P || echo "${CARGO_HOME:-$HOME/.cargo}")"
modules=(account-rbac tenant-roles)

check=false
case "${1:-}" in
  --check) check=true ;;
  "") ;;
  *) echo "usage: plugins/build.sh [--check]" >&2; exit 2 ;;
esac

if $check; then
  target_dir="$(mktemp -d "${TMPDIR:-/tmp}/latchkey-policies.XXXXXX")"
  trap 'rm -rf "$target_dir"' EXIT
else
  target_dir="$root/target/policies"
fi

# Only these flags: RUSTFLAGS or CARGO_ENCODED_RUSTFLAGS from the environment would take
# precedence over the per-target variable and change the output. The stack is 64 KiB
# instead of rustc's 1 MiB default: a decision needs little, and the module's initial
# memory drops from 17 pages to 2 (a deeper stack would trap, which fails closed).
unset RUSTFLAGS CARGO_ENCODED_RUSTFLAGS CARGO_BUILD_RUSTFLAGS
export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS="\
--remap-path-prefix=$cargo_home=/cargo \
--remap-path-prefix=$target_dir=/target \
--remap-path-prefix=$root=/latchkey \
-C link-arg=-zstack-size=65536"
export CARGO_INCREMENTAL=0 SOURCE_DATE_EPOCH=0

packages=()
for m in "${modules[@]}"; do packages+=(-p "$m"); done
"$root/scripts/toolchain"
(cd "$root" && cargo build --locked --profile policy --target wasm32-unknown-unknown \
  --target-dir "$target_dir" "${packages[@]}")

out="$target_dir/wasm32-unknown-unknown/policy"
built=()
for m in "${modules[@]}"; do built+=("$out/${m//-/_}.wasm"); done
python3 "$root/plugins/inspect_wasm.py" --check "${built[@]}"

status=0
for m in "${modules[@]}"; do
  new="$out/${m//-/_}.wasm"
  committed="$root/policies/$m.wasm"
  if $check; then
    if [[ ! -f "$committed" ]]; then
      echo "MISSING policies/$m.wasm: run plugins/build.sh and commit the result" >&2
      status=1
    elif ! cmp -s "$new" "$committed"; then
      echo "DIFFERS policies/$m.wasm ($(wc -c <"$committed") bytes committed, $(wc -c <"$new") rebuilt): the source changed without a rebuild, or the build is not reproducible; run plugins/build.sh and commit" >&2
      status=1
    else
      echo "ok      policies/$m.wasm ($(wc -c <"$new") bytes, sha256 $(sha256sum "$new" | cut -c1-16))"
    fi
  else
    install -m 0644 "$new" "$committed"
    echo "wrote   policies/$m.wasm ($(wc -c <"$new") bytes, sha256 $(sha256sum "$new" | cut -c1-16))"
  fi
done
exit $status
