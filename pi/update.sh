#!/usr/bin/env bash
# Update this Pi's checkout to origin/main, check that the dashboard comes back healthy with the
# new version, and put the previous version back by itself when it does not.
# Run it over SSH from the checkout as the user who owns it: ./pi/update.sh. It re-runs itself
# detached (setsid, output to a log) so a dropped connection cannot leave a half-applied update.
# Each phase is written to a state file first, so a run that is killed (power cut, kill -9) is
# finished or rolled back by the next run; a rolled-back commit is not applied again until origin
# moves past it (or --retry).
# Exit codes: 0 updated and healthy, or already up to date and running; 1 the update failed health
# and was rolled back, the previous version is healthy; 2 refused, the checkout was not changed;
# 3 the update failed and the rolled-back version is not healthy either, or the running version
# could not be made healthy: a person must look.
set -euo pipefail

readonly BRANCH=main
readonly REMOTE=origin
readonly DASHBOARD=home-energy-dashboard.service
readonly SYNC=home-energy-sync-cache.service
readonly TIMER=home-energy-sync-cache.timer
readonly METER=home-energy-meter.service
readonly SERVICE_USER=homeenergy
readonly STATE_DIR=/var/lib/home-energy-analysis
# The services' env file (the program itself reads HOME_ENERGY_ENV_FILE the same way).
readonly ENV_FILE="${HOME_ENERGY_ENV_FILE:-/etc/home-energy-analysis/dashboard.env}"
# The dashboard's address comes from the program reading that env file (resolve_health_url).
HEALTH_URL="${HEALTH_URL:-}"
# A Pi 5 restarts the dashboard in a few seconds; a minute covers a slow first import after pip.
readonly HEALTH_TIMEOUT_S="${HEALTH_TIMEOUT_S:-60}"
# Every network step ends within its timeout whatever the other side does: an origin that accepts
# the connection and then says nothing would otherwise hold the update, and its lock, for ever.
# A fetch of a few commits takes seconds; pip may build a wheel on the Pi, so it gets longer.
readonly FETCH_TIMEOUT_S="${HOME_ENERGY_UPDATE_FETCH_TIMEOUT_S:-120}"
readonly PIP_TIMEOUT_S="${HOME_ENERGY_UPDATE_PIP_TIMEOUT_S:-900}"

CHECKOUT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
readonly CHECKOUT
readonly SELF="$CHECKOUT/pi/update.sh"
# Tests only: kill -9 this worker at a named point (see checkpoint), as a power cut would.
readonly KILL_AT="${HOME_ENERGY_UPDATE_KILL_AT:-}"

# State of the run, read by the status block and the rollback.
OLD=""
NEW=""
STATE="checking"  # checking -> applying -> done | rolling-back
DEPS_CHANGED=0
UNITS_CHANGED=0
CACHE=""
BACKUP=""
SCHEMA_BEFORE=""
SYNC_NOTE=""
TIMER_PAUSED=0
LAST_HEALTH="(not checked)"
LOG=""
PHASE=""
RETRY=0
REASON=""
STATE_FILE=""     # .git/home-energy-update.state: the phase of the update in progress
REJECTED_FILE=""  # .git/home-energy-update.rolled-back: the last commit that was rolled back

say() { printf '%s\n' "$*"; }
step() { printf '\n==> %s\n' "$*"; }
warn() { printf 'warning: %s\n' "$*"; }

refuse() {
  printf 'update.sh: refused: %s\n' "$*"
  printf 'update.sh: nothing was changed.\n'
  exit 2
}

usage() {
  cat <<EOF
usage: ./pi/update.sh [--foreground] [--retry]

Fast-forwards $CHECKOUT to $REMOTE/$BRANCH, restarts the services, runs one sync and waits up to
${HEALTH_TIMEOUT_S}s for the dashboard's /api/health to report the new commit; otherwise rolls back.
Finishes or rolls back an update that was interrupted; when already up to date, makes sure the
running version is this commit and the dashboard and sync timer are running.
Runs detached with its output in the log (see docs/deploy.md); --foreground runs it here.
--retry applies $REMOTE/$BRANCH even if that very commit was rolled back before.
Environment: HEALTH_URL (else \`home-energy config --health-url\` with $ENV_FILE),
HEALTH_TIMEOUT_S, SQLITE_PATH (else read from $ENV_FILE).
EOF
}

# --- small Python helpers: python3 is always on Raspberry Pi OS, the sqlite3 CLI may not be ---

# Consistent copy of a live SQLite file (the sync may be writing); prints its schema version.
readonly PY_BACKUP='
import contextlib, os, sqlite3, sys
src, dst = sys.argv[1], sys.argv[2]
if not os.path.exists(src):
    print("absent")
    raise SystemExit(0)
tmp = dst + ".tmp"
if os.path.exists(tmp):
    os.remove(tmp)
with contextlib.closing(sqlite3.connect(src)) as s, contextlib.closing(sqlite3.connect(tmp)) as d:
    s.backup(d)
    d.execute("PRAGMA journal_mode = DELETE")  # one self-contained file, no -wal beside it
    version = s.execute("PRAGMA user_version").fetchone()[0]
os.replace(tmp, dst)
print(version)
'

# Copy the backup back into the live file through SQLite, which keeps its WAL consistent
# (replacing the file under a leftover -wal would corrupt it).
readonly PY_RESTORE='
import contextlib, sqlite3, sys
with contextlib.closing(sqlite3.connect(sys.argv[1])) as b, contextlib.closing(sqlite3.connect(sys.argv[2])) as c:
    b.backup(c)
    print(c.execute("PRAGMA user_version").fetchone()[0])
'

readonly PY_SCHEMA='
import contextlib, os, sqlite3, sys
if not os.path.exists(sys.argv[1]):
    print("absent")
    raise SystemExit(0)
with contextlib.closing(sqlite3.connect(sys.argv[1])) as c:
    print(c.execute("PRAGMA user_version").fetchone()[0])
'

# Health probe: prints what it saw; exit 0 only for HTTP 200 whose JSON names the wanted version.
readonly PY_HEALTH='
import json, sys, urllib.error, urllib.request
url, want = sys.argv[1], sys.argv[2]
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
try:
    with opener.open(url, timeout=3) as response:
        status, body = response.status, response.read().decode("utf-8", "replace")
except urllib.error.HTTPError as exc:
    status, body = exc.code, exc.read().decode("utf-8", "replace")
except (OSError, ValueError) as exc:
    print("no answer: %s" % (getattr(exc, "reason", None) or exc))
    raise SystemExit(1)
body = body.strip()
try:
    version = json.loads(body).get("version")
except (ValueError, AttributeError):
    version = None
print(body if status == 200 else "HTTP %d: %s" % (status, body))
raise SystemExit(0 if status == 200 and version == want else 1)
'

as_service() { sudo -n -u "$SERVICE_USER" "$@"; }
# fd 9 holds the update lock: services started from here must not inherit it.
sctl() { sudo -n systemctl "$@" 9>&-; }
# within SECONDS COMMAND...: run a network step under a deadline. timeout(1) signals the
# command's whole process group (git's remote helpers, pip's builds), TERM first and KILL 5 s
# later; the lock's fd is not passed on, so nothing left behind can hold it. Exit 124: too slow.
within() {
  local seconds="$1" rc=0
  shift
  timeout --kill-after=5 "$seconds" "$@" 9>&- || rc=$?
  if ((rc == 137)); then rc=124; fi  # killed after ignoring TERM: still "too slow"
  return "$rc"
}

# --- detaching ---

detach() {
  LOG="$(git -C "$CHECKOUT" rev-parse --path-format=absolute --git-path home-energy-update.log)"
  touch "$LOG"
  local start pid rc=0
  start="$(stat -c %s "$LOG")"
  # The worker starts with SIGHUP ignored, so a hang-up before setsid takes effect cannot stop it.
  trap '' HUP
  HOME_ENERGY_UPDATE_DETACHED=1 setsid --wait "$SELF" "$@" </dev/null >>"$LOG" 2>&1 &
  pid=$!
  trap 'printf "\nupdate.sh: stopped following; the update goes on (pid %s). Log: %s\n" "$pid" "$LOG"; exit 130' INT HUP TERM
  say "update.sh: running as pid $pid in its own session: it finishes even if this connection drops."
  say "update.sh: log: $LOG"
  tail -c +"$((start + 1))" -f --sleep-interval=0.5 --pid="$pid" "$LOG" || true
  wait "$pid" || rc=$?
  exit "$rc"
}

# --- the update ---

# env_value NAME: one setting from the env file. Only that line is read: the file also holds the
# Amber token.
env_value() {
  local line value
  line="$(sudo -n grep -E "^[[:space:]]*(export[[:space:]]+)?$1[[:space:]]*=" "$ENV_FILE" 2>/dev/null | tail -n 1)" || true
  value="${line#*=}"
  value="${value#"${value%%[![:space:]]*}"}"
  value="${value%"${value##*[![:space:]]}"}"
  value="${value#[\"\']}"
  value="${value%[\"\']}"
  printf '%s\n' "$value"
}

# The dashboard's health URL as the program derives it from the env file the units read (HOST,
# PORT). A checkout older than `home-energy config` falls back to reading PORT itself.
resolve_health_url() {
  if [[ -n "$HEALTH_URL" ]]; then return 0; fi
  local program="$CHECKOUT/.venv/bin/home-energy" port
  if [[ -x "$program" ]] && HEALTH_URL="$(as_service "$program" --env-file "$ENV_FILE" config --health-url 9>&-)" \
      && [[ "$HEALTH_URL" == http://* ]]; then
    return 0
  fi
  port="$(env_value PORT)"
  HEALTH_URL="http://127.0.0.1:${port:-5050}/api/health"
  warn "home-energy config --health-url did not answer; using $HEALTH_URL"
}

cache_path() {
  local value="${SQLITE_PATH:-}"
  if [[ -z "$value" ]]; then value="$(env_value SQLITE_PATH)"; fi
  [[ -n "$value" ]] || value="data/cache.sqlite"
  # A relative path is relative to the units' WorkingDirectory.
  [[ "$value" == /* ]] || value="$STATE_DIR/$value"
  printf '%s\n' "$value"
}

# Checked before detaching, so a mistaken `sudo ./pi/update.sh` leaves no root-owned log behind.
check_caller() {
  local owner
  owner="$(stat -c %U "$CHECKOUT")"
  if [[ $EUID -eq 0 && "$owner" != root ]]; then
    refuse "run me as $owner (who owns $CHECKOUT), not as root: I use sudo where I must"
  fi
  [[ "$HEALTH_TIMEOUT_S" =~ ^[0-9]+$ ]] || refuse "HEALTH_TIMEOUT_S must be a whole number of seconds"
}

check_preconditions() {
  sudo -n true 2>/dev/null \
    || refuse "sudo asks for a password; update.sh needs passwordless sudo for systemctl (Raspberry Pi OS's first user has it)"
  local branch
  branch="$(git symbolic-ref --quiet --short HEAD || printf '(detached HEAD)')"
  [[ "$branch" == "$BRANCH" ]] || refuse "the checkout is on '$branch', not '$BRANCH': run 'git switch $BRANCH' first"
  local dirty
  dirty="$(git status --porcelain)"
  if [[ -n "$dirty" ]]; then
    refuse "the checkout has local changes; commit, stash or remove them first:
$dirty"
  fi
}

# --- the state file: what an interrupted run left to finish ---

# write_state PHASE: recorded before the phase starts; replaced atomically.
write_state() {
  local tmp="$STATE_FILE.tmp"
  printf '%s=%s\n' PHASE "$1" OLD "$OLD" NEW "$NEW" DEPS_CHANGED "$DEPS_CHANGED" \
    UNITS_CHANGED "$UNITS_CHANGED" CACHE "$CACHE" BACKUP "$BACKUP" SCHEMA_BEFORE "$SCHEMA_BEFORE" \
    REASON "$REASON" >"$tmp"
  sync "$tmp" 2>/dev/null || true
  mv -f "$tmp" "$STATE_FILE"
}

clear_state() { rm -f "$STATE_FILE" "$STATE_FILE.tmp"; }

# Prints the recorded phase after setting the variables the state file holds.
read_state() {
  local key value phase=""
  while IFS='=' read -r key value; do
    case "$key" in
      PHASE) phase="$value" ;;
      OLD) OLD="$value" ;;
      NEW) NEW="$value" ;;
      DEPS_CHANGED) DEPS_CHANGED="${value:-0}" ;;
      UNITS_CHANGED) UNITS_CHANGED="${value:-0}" ;;
      CACHE) CACHE="$value" ;;
      BACKUP) BACKUP="$value" ;;
      SCHEMA_BEFORE) SCHEMA_BEFORE="$value" ;;
      REASON) REASON="$value" ;;
      *) ;;
    esac
  done <"$STATE_FILE"
  PHASE="$phase"
}

# Tests only: HOME_ENERGY_UPDATE_KILL_AT=NAME makes the worker kill -9 itself at that point.
checkpoint() {
  if [[ "$KILL_AT" == "$1" ]]; then
    say "(HOME_ENERGY_UPDATE_KILL_AT) kill -9 at: $1"
    kill -KILL "$$"
  fi
}

# An earlier run was killed (power cut, kill -9) with the phase in the state file: finish it.
resume_interrupted() {
  PHASE=""
  read_state
  local head
  head="$(git rev-parse HEAD)"
  step "an earlier update stopped while $PHASE ($OLD -> $NEW)"
  case "$PHASE" in
    paused)
      # The checkout was not changed yet: only the sync timer was stopped.
      say "the checkout was not changed; starting $TIMER again"
      sctl start "$TIMER" || warn "could not start $TIMER"
      clear_state
      OLD="" NEW="" CACHE="" BACKUP="" SCHEMA_BEFORE="" DEPS_CHANGED=0 UNITS_CHANGED=0
      ;;
    applying)
      if [[ "$head" != "$OLD" && "$head" != "$NEW" ]]; then
        warn "the checkout is at $head, neither $OLD nor $NEW: forgetting the interrupted update"
        clear_state
        return 0
      fi
      say "finishing it: $NEW, checked for health as any update"
      trap on_exit EXIT
      STATE="applying"
      sctl stop "$TIMER" "$SYNC" || true
      git reset --hard --quiet "$NEW" || rollback "git could not move to $NEW"
      finish_apply
      ;;
    rolling-back)
      trap on_exit EXIT
      rollback "${REASON:-interrupted rollback} (resumed)"
      ;;
    *)
      warn "unknown phase '$PHASE' in $STATE_FILE: forgetting it"
      clear_state
      ;;
  esac
}

# --- keeping the installed version running ---

# The running version must be HEAD and the dashboard and the sync timer active: repair what is
# not. Returns non-zero when the dashboard cannot be made healthy.
ensure_running() {
  local head repaired=0
  head="$(git rev-parse HEAD)"
  if ! systemctl is-active --quiet "$TIMER"; then
    say "$TIMER is not active: starting it (a missed sync runs at once)"
    sctl start "$TIMER" || warn "could not start $TIMER"
    repaired=1
  fi
  if LAST_HEALTH="$(python3 -c "$PY_HEALTH" "$HEALTH_URL" "$head")"; then
    if ((repaired)); then say "repaired; the dashboard runs $head"; fi
    return 0
  fi
  say "the dashboard does not report $head (${LAST_HEALTH}): restarting it"
  sctl restart "$DASHBOARD" || warn "$DASHBOARD did not start"
  wait_health "$head"
}

# already_current: nothing to apply; check what runs, then stop.
already_current() {  # MESSAGE
  say "$1"
  if ensure_running; then
    print_status "already up to date"
    exit 0
  fi
  print_status "up to date, but the dashboard is NOT healthy"
  say "update.sh: look at: journalctl -u $DASHBOARD -e   (docs/deploy.md, 'Recovery')"
  exit 3
}

fetch() {
  step "fetching $REMOTE/$BRANCH"
  local rc=0
  within "$FETCH_TIMEOUT_S" git fetch --quiet "$REMOTE" || rc=$?
  if ((rc == 124)); then
    refuse "$REMOTE did not answer git fetch within ${FETCH_TIMEOUT_S}s (network?): try again later"
  fi
  ((rc == 0)) || refuse "cannot fetch from $REMOTE (network?): try again later"
  OLD="$(git rev-parse HEAD)"
  NEW="$(git rev-parse --verify --quiet "$REMOTE/$BRANCH^{commit}")" || refuse "$REMOTE has no branch $BRANCH"
  if [[ "$OLD" == "$NEW" ]] || git merge-base --is-ancestor "$NEW" "$OLD"; then
    already_current "already up to date at $OLD"
  fi
  local rejected=""
  if [[ -f "$REJECTED_FILE" ]]; then read -r rejected _ <"$REJECTED_FILE" || true; fi
  if [[ "$NEW" == "$rejected" ]] && ((!RETRY)); then
    say "$REMOTE/$BRANCH is $NEW, which was rolled back: $(cut -d' ' -f2- "$REJECTED_FILE")"
    say "not applying it again until $REMOTE/$BRANCH moves past it; ./pi/update.sh --retry tries it anyway"
    NEW=""
    if ! ensure_running; then
      print_status "skipped the rolled-back commit, and the dashboard is NOT healthy"
      exit 3
    fi
    print_status "skipped $rejected (rolled back before)"
    exit 2
  fi
  git merge-base --is-ancestor "$OLD" "$NEW" \
    || refuse "local $BRANCH has commits that $REMOTE/$BRANCH does not: it cannot be fast-forwarded"
  say "$OLD -> $NEW"
  git log --oneline --no-decorate "$OLD..$NEW" | sed 's/^/  /'
  local files
  files="$(git diff --name-only "$OLD" "$NEW")"
  if grep -qx 'pyproject.toml' <<<"$files"; then DEPS_CHANGED=1; fi
  if grep -q '^pi/systemd/' <<<"$files"; then UNITS_CHANGED=1; fi
}

backup_cache() {
  CACHE="$(cache_path)"
  BACKUP="$CACHE.pre-update"
  step "backing up the cache $CACHE"
  SCHEMA_BEFORE="$(as_service python3 -c "$PY_BACKUP" "$CACHE" "$BACKUP")" || return 1
  if [[ "$SCHEMA_BEFORE" == absent ]]; then
    say "no cache yet: nothing to back up"
  else
    say "backup: $BACKUP (schema version $SCHEMA_BEFORE)"
  fi
}

install_deps() {
  step "reinstalling dependencies (pyproject.toml changed)"
  local rc=0
  within "$PIP_TIMEOUT_S" "$CHECKOUT/.venv/bin/python" -m pip install --quiet -e "$CHECKOUT" || rc=$?
  if ((rc == 124)); then warn "pip did not finish within ${PIP_TIMEOUT_S}s (network?)"; fi
  return "$rc"
}

install_units() {
  step "reinstalling the systemd units (pi/systemd changed)"
  sudo -n "$CHECKOUT/pi/install.sh" --units-only
}

start_services() {
  step "restarting $DASHBOARD"
  sctl restart "$DASHBOARD" || return 1
  sctl restart "$METER" || warn "could not restart $METER"
  step "syncing once now"
  if sctl start "$SYNC"; then
    SYNC_NOTE="ok"
  else
    # Not a reason to roll back: Amber or the network may be down; the cache is kept.
    SYNC_NOTE="failed (see journalctl -u $SYNC); the dashboard serves the cache it has"
    warn "the sync did not succeed: $SYNC_NOTE"
  fi
  # Tests: killed at the sync step, after the sync and before the timer is back (a sync of the
  # demo can end within milliseconds, so a timed kill during it would be a race).
  checkpoint syncing
  sctl start "$TIMER" || warn "could not start $TIMER"
}

wait_health() {  # EXPECTED_VERSION
  step "waiting up to ${HEALTH_TIMEOUT_S}s for $HEALTH_URL to report $1"
  local deadline=$((SECONDS + HEALTH_TIMEOUT_S))
  while true; do
    if LAST_HEALTH="$(python3 -c "$PY_HEALTH" "$HEALTH_URL" "$1")"; then
      say "healthy: $1"
      return 0
    fi
    if ((SECONDS >= deadline)); then
      say "not healthy after ${HEALTH_TIMEOUT_S}s; last answer: $LAST_HEALTH"
      return 1
    fi
    sleep 0.5
  done
}

apply() {
  STATE="applying"
  write_state applying
  git merge --ff-only --quiet "$NEW" || rollback "git could not fast-forward to $NEW"
  checkpoint fast-forwarded
  finish_apply
}

# From the new commit checked out to healthy, or to a rollback.
finish_apply() {
  if ((DEPS_CHANGED)); then install_deps || rollback "pip could not install the new dependencies"; fi
  if ((UNITS_CHANGED)); then install_units || rollback "the new systemd units could not be installed"; fi
  start_services || rollback "$DASHBOARD did not start"
  wait_health "$NEW" || rollback "$HEALTH_URL did not report $NEW within ${HEALTH_TIMEOUT_S}s"
  STATE="done"
  clear_state
  rm -f "$REJECTED_FILE"
  print_status "updated"
  exit 0
}

rollback() {  # REASON
  local reason="$1"
  STATE="rolling-back"
  trap - EXIT
  REASON="$reason"
  write_state rolling-back
  step "rolling back to $OLD: $reason"
  sctl stop "$TIMER" "$SYNC" || true
  git reset --hard --quiet "$OLD" || warn "git reset to $OLD failed"
  if ((DEPS_CHANGED)); then install_deps || warn "pip could not reinstall the previous dependencies"; fi
  if ((UNITS_CHANGED)); then install_units || warn "the previous systemd units could not be reinstalled"; fi
  if [[ -n "$SCHEMA_BEFORE" && "$SCHEMA_BEFORE" != absent ]]; then
    local schema_now
    schema_now="$(as_service python3 -c "$PY_SCHEMA" "$CACHE")" || schema_now="unknown"
    if [[ "$schema_now" != "$SCHEMA_BEFORE" ]]; then
      # The new code migrated the cache; the previous code refuses a newer schema.
      say "cache schema is $schema_now, was $SCHEMA_BEFORE: restoring $BACKUP"
      sctl stop "$DASHBOARD" || true
      as_service python3 -c "$PY_RESTORE" "$BACKUP" "$CACHE" >/dev/null || warn "restoring the cache backup failed"
    fi
  fi
  checkpoint rolling-back
  sctl restart "$DASHBOARD" || warn "$DASHBOARD did not start"
  sctl restart "$METER" || warn "could not restart $METER"
  # The previous code refreshes the cache now rather than at the next timer run.
  sctl start "$SYNC" || warn "the sync with the previous version did not succeed (see journalctl -u $SYNC)"
  sctl start "$TIMER" || warn "could not start $TIMER"
  # The rollback is complete: remember the commit so the next run does not apply it again.
  printf '%s %s: %s\n' "$NEW" "$(date -u '+%Y-%m-%d %H:%M UTC')" "$reason" >"$REJECTED_FILE"
  clear_state
  if wait_health "$OLD"; then
    print_status "FAILED, rolled back to the previous version"
    say "update.sh: the update to $NEW failed ($reason); $OLD is running again."
    exit 1
  fi
  print_status "FAILED, and the previous version is not healthy either"
  say "update.sh: the update to $NEW failed ($reason) and the rollback to $OLD is not healthy."
  say "update.sh: look at: journalctl -u $DASHBOARD -e   (docs/deploy.md, 'Recovery')"
  exit 3
}

# Anything unforeseen after the tree started changing still ends in a rollback.
# shellcheck disable=SC2317  # run by the EXIT trap
on_exit() {
  local rc=$?
  if [[ "$STATE" == applying ]]; then rollback "update.sh stopped unexpectedly (exit $rc)"; fi
  if [[ "$STATE" == checking ]] && ((TIMER_PAUSED)); then
    sctl start "$TIMER" || true
    clear_state
  fi
}

print_status() {  # RESULT
  local running
  running="$(git rev-parse HEAD)"
  printf '\n==== home-energy update: %s ====\n' "$1"
  if [[ -n "$NEW" && "$OLD" != "$NEW" ]]; then
    say "commit:    $OLD -> $NEW"
    say "running:   $running ($(git log -1 --format=%s "$running"))"
    say "changes:"
    git log --oneline --no-decorate "$OLD..$NEW" | sed 's/^/  /'
    say "files:    $(git diff --shortstat "$OLD" "$NEW")"
    local deps="unchanged"
    if ((DEPS_CHANGED)); then deps="reinstalled"; fi
    say "deps:      $deps"
    if [[ "$SCHEMA_BEFORE" == absent ]]; then
      say "cache:     none yet, nothing backed up"
    else
      say "cache:     backup $BACKUP (schema version before: ${SCHEMA_BEFORE:-unknown})"
    fi
    say "sync (new version): ${SYNC_NOTE:-not run}"
  else
    say "commit:    $running ($(git log -1 --format=%s "$running"))"
  fi
  say "units:"
  local unit
  for unit in "$DASHBOARD" "$TIMER" "$SYNC"; do
    printf '  %-34s %s\n' "$unit" "$(systemctl is-active "$unit" 2>/dev/null || true)"
  done
  say "next sync:"
  systemctl list-timers --all --no-pager "$TIMER" 2>/dev/null | sed 's/^/  /' || true
  if [[ "$LAST_HEALTH" == "(not checked)" ]]; then
    LAST_HEALTH="$(python3 -c "$PY_HEALTH" "$HEALTH_URL" "$running")" || true
  fi
  say "health:    $LAST_HEALTH"
  if [[ -n "$LOG" ]]; then say "log:       $LOG"; fi
}

main() {
  local foreground=0
  local -a args=("$@")
  while (($#)); do
    case "$1" in
      --foreground) foreground=1 ;;
      --retry) RETRY=1 ;;
      -h|--help) usage; exit 0 ;;
      *) usage >&2; exit 2 ;;
    esac
    shift
  done
  cd "$CHECKOUT"
  export GIT_TERMINAL_PROMPT=0
  check_caller
  if ((!foreground)) && [[ "${HOME_ENERGY_UPDATE_DETACHED:-}" != 1 ]]; then
    detach "${args[@]}"
  fi
  if [[ "${HOME_ENERGY_UPDATE_DETACHED:-}" == 1 ]]; then
    LOG="$(git rev-parse --path-format=absolute --git-path home-energy-update.log)"
    printf '\n#### update.sh started %s by %s\n' "$(date -u '+%Y-%m-%d %H:%M:%S UTC')" "$(id -un)"
  fi
  # A signal ends the run through the EXIT trap, which rolls back a half-applied update. (In the
  # detached worker SIGHUP stays ignored.)
  trap 'exit 129' HUP
  trap 'exit 130' INT
  trap 'exit 143' TERM
  # One update at a time; the lock lives in .git so it never dirties the tree.
  local lock
  lock="$(git rev-parse --path-format=absolute --git-path home-energy-update.lock)"
  exec 9>>"$lock"
  flock -n 9 || refuse "another update is running (lock $lock)"
  STATE_FILE="$(git rev-parse --path-format=absolute --git-path home-energy-update.state)"
  REJECTED_FILE="$(git rev-parse --path-format=absolute --git-path home-energy-update.rolled-back)"
  sudo -n true 2>/dev/null \
    || refuse "sudo asks for a password; update.sh needs passwordless sudo for systemctl (Raspberry Pi OS's first user has it)"
  resolve_health_url
  if [[ -f "$STATE_FILE" ]]; then resume_interrupted; fi
  check_preconditions
  fetch
  trap on_exit EXIT
  step "pausing the sync timer"
  TIMER_PAUSED=1
  write_state paused
  sctl stop "$TIMER" "$SYNC" || refuse "could not stop $TIMER"
  backup_cache || refuse "could not back up the cache $CACHE"
  write_state paused
  checkpoint fetched
  apply
}

# Everything above is only definitions, and main always exits: bash has read all it runs before
# git replaces this file.
main "$@"
