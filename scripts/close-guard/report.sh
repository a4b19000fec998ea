#!/usr/bin/env bash
# Prints the double closes close-guard recorded in $1 with symbolised frames (addr2line + swift demangle) and exits 1,
# or exits 0 when there are none.
set -u
dir=$1
shopt -s nullglob
reports=("$dir"/ebadf.*)
[ ${#reports[@]} -eq 0 ] && { echo "close-guard: no double close recorded"; exit 0; }
echo "close-guard: close() failed with EBADF (a double close) — backtraces:"
for report in "${reports[@]}"; do
  while IFS= read -r line; do
    if [[ $line =~ ^(.+)\(\+(0x[0-9a-f]+)\)\[ ]]; then
      binary=${BASH_REMATCH[1]} offset=$(printf "0x%x" $(( BASH_REMATCH[2] - 1 )))  # the call, not the return address
      symbol=$(addr2line -f -C -e "$binary" "$offset" 2>/dev/null | head -1 | swift demangle --simplified 2>/dev/null)
      echo "  ${symbol:-?}  ($line)"
    else
      echo "$line"
    fi
  done < "$report"
done
exit 1
