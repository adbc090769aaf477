# The docker replay's run script (reprex/replay/docker/layout.py: run_script), the container's
# command as `sh -c THIS sh NONCE WATCHDOG_S RECORD_FILES PYTHON ARGS...`. POSIX sh, builtins
# and coreutils only: base images differ. Paths are the image's (docker-build.sh) and the
# container's mounts (backend.py): /reprex/in (the work files, read-only), /tmp/work.
#
# $1: the run's marker nonce; $2: the watchdog's seconds; $3: the record's files, as
# space-separated name:path:cap words; the rest: the entry, its interpreter first.
n=$1; w=$2; emit=$3; shift 3

# The watchdog: a subshell that kills every process of the run's uid (this script included,
# so the container ends) if the run is still going $w seconds on.
(sleep "$w"; kill -KILL -1) </dev/null >/dev/null 2>&1 &

# The work files, copied from the read-only input mount to a scratch dir.
mkdir -p /tmp/work /tmp/tmp && cp -R /reprex/in/. /tmp/work/ && cd /tmp/work || exit 125

# The entry, in the foreground (a child of sh: signals and stdin as usual); then every other
# process of the run's uid is killed (what `exec python` under the init got when the container
# stopped; here it also means nothing can write into the record or the stream while it goes
# out). sh keeps the entry's status.
"$@"; rc=$?
kill -KILL -1 2>/dev/null

# stdout left non-blocking by the program (asyncio's write pipes do): the record's write-out
# would meet EAGAIN at a full pipe, so clear the flag (builtins only unless it is set).
fl=0
while read -r k v; do [ "$k" = flags: ] && fl=$v; done 2>/dev/null < /proc/self/fdinfo/1
[ $(( 0$fl & 04000 )) -ne 0 ] && "$1" -I -S -c "import fcntl, os; f = fcntl.fcntl(1, fcntl.F_GETFL); fcntl.fcntl(1, fcntl.F_SETFL, f & ~os.O_NONBLOCK)"

# The record, to stdout: the marker, then for each regular file (links and FIFOs skipped) a
# "name size" line and that many bytes (at most its cap), then "end".
printf "\n\036[reprex-record %s]\n" "$n"
for e in $emit; do
    f=${e#*:}; cap=${f##*:}; f=${f%:*}
    if [ -f "$f" ] && [ ! -L "$f" ]; then
        s=$(wc -c 2>/dev/null < "$f") || continue
        [ "$s" -gt "$cap" ] && s=$cap
        printf "%s %s\n" "${e%%:*}" "$s"; head -c "$s" "$f"
    fi
done
printf "end\n"; exit $rc
