# scripts/proc.sh — process helpers shared by scripts/redis.sh, stop.sh and
# topology.sh.  Sourced, not run.

# alive PID: the process exists and is not a zombie awaiting its reaper
# (kill -0 succeeds on a zombie, which would make a stop wait for nothing)
alive() {
    local stat
    kill -0 "$1" 2>/dev/null || return 1
    if [[ -r /proc/$1/stat ]]; then
        stat=$(</proc/"$1"/stat) 2>/dev/null || return 1
        stat=${stat##*) }
        [[ ${stat:0:1} != Z ]] || return 1
    fi
    return 0
}
