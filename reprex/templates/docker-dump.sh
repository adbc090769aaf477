# The docker replay's stack dump on a timeout (reprex/replay/docker/layout.py: dump_script),
# exec'd in the container as the run's uid: SIGUSR1 to the process that claimed the record
# (faulthandler dumps every thread's stack into /reprex/record/fault.log), up to 2 s for it
# to land, then SIGKILL to that process; the run script then writes the record as usual.
# Exit 3: no claim; 4: the signal could not be sent (the backend then kills the container).
c=/reprex/record/claim
[ -f "$c" ] && [ ! -L "$c" ] || exit 3
p=$(head -c 20 "$c" 2>/dev/null)
case "$p" in ""|*[!0-9]*) exit 3;; esac
size() { wc -c 2>/dev/null < /reprex/record/fault.log || echo 0; }
s0=$(size)
kill -USR1 "$p" 2>/dev/null || exit 4
i=0
while [ $i -lt 20 ]; do
    sleep 0.1
    [ "$(size)" -gt "$s0" ] && { sleep 0.2; break; }
    i=$((i+1))
done
kill -KILL "$p" 2>/dev/null
exit 0
