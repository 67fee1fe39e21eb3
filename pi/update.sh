#!/usr/bin/env bash
# Update this Pi's checkout to origin/main, check that the dashboard comes back healthy with the
# new version, and put the previous version back by itself when it does not.
#
# Run it over SSH from the checkout as the user who owns it: ./pi/update.sh
# It re-runs itself detached (setsid, output to a log) so a dropped connection cannot leave a
# half-applied update; this terminal only follows the log.
#
# Exit codes: 0 updated and healthy, or already up to date; 1 the update failed health and was
# rolled back, the previous version is healthy; 2 refused or could not start, nothing changed;
# 3 the update failed and the rolled-back version is not healthy either: a person must look.
set -euo pipefail

readonly BRANCH=main
readonly REMOTE=origin
readonly DASHBOARD=home-energy-dashboard.service
readonly SYNC=home-energy-sync-cache.service
readonly TIMER=home-energy-sync-cache.timer
readonly SERVICE_USER=homeenergy
readonly STATE_DIR=/var/lib/home-energy-analysis
# The services' env file (the program itself reads HOME_ENERGY_ENV_FILE the same way).
readonly ENV_FILE="${HOME_ENERGY_ENV_FILE:-/etc/home-energy-analysis/dashboard.env}"
readonly HEALTH_URL="${HEALTH_URL:-http://localhost:5050/api/health}"
# A Pi 5 restarts the dashboard in a few seconds; a minute covers a slow first import after pip.
readonly HEALTH_TIMEOUT_S="${HEALTH_TIMEOUT_S:-60}"

CHECKOUT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
readonly CHECKOUT
readonly SELF="$CHECKOUT/pi/update.sh"

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
usage: ./pi/update.sh [--foreground]

Fast-forwards $CHECKOUT to $REMOTE/$BRANCH, restarts the services, runs one sync and waits up to
${HEALTH_TIMEOUT_S}s for $HEALTH_URL to report the new commit; otherwise rolls back.
Runs detached with its output in the log (see docs/deploy.md); --foreground runs it here.
Environment: HEALTH_URL, HEALTH_TIMEOUT_S, SQLITE_PATH (else read from $ENV_FILE).
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

# --- detaching ---

detach() {
  LOG="$(git -C "$CHECKOUT" rev-parse --path-format=absolute --git-path home-energy-update.log)"
  touch "$LOG"
  local start pid rc=0
  start="$(stat -c %s "$LOG")"
  # The worker starts with SIGHUP ignored, so a hang-up before setsid takes effect cannot stop it.
  trap '' HUP
  HOME_ENERGY_UPDATE_DETACHED=1 setsid --wait "$SELF" </dev/null >>"$LOG" 2>&1 &
  pid=$!
  trap 'printf "\nupdate.sh: stopped following; the update goes on (pid %s). Log: %s\n" "$pid" "$LOG"; exit 130' INT HUP TERM
  say "update.sh: running as pid $pid in its own session: it finishes even if this connection drops."
  say "update.sh: log: $LOG"
  tail -c +"$((start + 1))" -f --sleep-interval=0.5 --pid="$pid" "$LOG" || true
  wait "$pid" || rc=$?
  exit "$rc"
}

# --- the update ---

cache_path() {
  local value="${SQLITE_PATH:-}" line
  if [[ -z "$value" ]]; then
    # Only the SQLITE_PATH line is read: the file also holds the Amber token.
    line="$(sudo -n grep -E '^[[:space:]]*(export[[:space:]]+)?SQLITE_PATH[[:space:]]*=' "$ENV_FILE" 2>/dev/null | tail -n 1)" || true
    value="${line#*=}"
    value="${value#"${value%%[![:space:]]*}"}"
    value="${value%"${value##*[![:space:]]}"}"
    value="${value#[\"\']}"
    value="${value%[\"\']}"
  fi
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

fetch() {
  step "fetching $REMOTE/$BRANCH"
  git fetch --quiet "$REMOTE" || refuse "cannot fetch from $REMOTE (network?): try again later"
  OLD="$(git rev-parse HEAD)"
  NEW="$(git rev-parse --verify --quiet "$REMOTE/$BRANCH^{commit}")" || refuse "$REMOTE has no branch $BRANCH"
  if [[ "$OLD" == "$NEW" ]] || git merge-base --is-ancestor "$NEW" "$OLD"; then
    say "already up to date at $OLD"
    print_status "already up to date"
    exit 0
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
  "$CHECKOUT/.venv/bin/python" -m pip install --quiet -e "$CHECKOUT"
}

install_units() {
  step "reinstalling the systemd units (pi/systemd changed)"
  sudo -n "$CHECKOUT/pi/install.sh" --units-only
}

start_services() {
  step "restarting $DASHBOARD"
  sctl restart "$DASHBOARD" || return 1
  step "syncing once now"
  if sctl start "$SYNC"; then
    SYNC_NOTE="ok"
  else
    # Not a reason to roll back: Amber or the network may be down; the cache is kept.
    SYNC_NOTE="failed (see journalctl -u $SYNC); the dashboard serves the cache it has"
    warn "the sync did not succeed: $SYNC_NOTE"
  fi
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
  git merge --ff-only --quiet "$NEW" || rollback "git could not fast-forward to $NEW"
  if ((DEPS_CHANGED)); then install_deps || rollback "pip could not install the new dependencies"; fi
  if ((UNITS_CHANGED)); then install_units || rollback "the new systemd units could not be installed"; fi
  start_services || rollback "$DASHBOARD did not start"
  wait_health "$NEW" || rollback "$HEALTH_URL did not report $NEW within ${HEALTH_TIMEOUT_S}s"
  STATE="done"
  print_status "updated"
  exit 0
}

rollback() {  # REASON
  local reason="$1"
  STATE="rolling-back"
  trap - EXIT
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
  sctl restart "$DASHBOARD" || warn "$DASHBOARD did not start"
  # The previous code refreshes the cache now rather than at the next timer run.
  sctl start "$SYNC" || warn "the sync with the previous version did not succeed (see journalctl -u $SYNC)"
  sctl start "$TIMER" || warn "could not start $TIMER"
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
  if [[ "$STATE" == checking ]] && ((TIMER_PAUSED)); then sctl start "$TIMER" || true; fi
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
  while (($#)); do
    case "$1" in
      --foreground) foreground=1 ;;
      -h|--help) usage; exit 0 ;;
      *) usage >&2; exit 2 ;;
    esac
    shift
  done
  cd "$CHECKOUT"
  export GIT_TERMINAL_PROMPT=0
  check_caller
  if ((!foreground)) && [[ "${HOME_ENERGY_UPDATE_DETACHED:-}" != 1 ]]; then
    detach
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
  check_preconditions
  fetch
  trap on_exit EXIT
  step "pausing the sync timer"
  sctl stop "$TIMER" "$SYNC" || refuse "could not stop $TIMER"
  TIMER_PAUSED=1
  backup_cache || refuse "could not back up the cache $CACHE"
  apply
}

# Everything above is only definitions, and main always exits: bash has read all it runs before
# git replaces this file.
main "$@"
