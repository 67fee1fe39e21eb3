#!/usr/bin/env bash
# Install home-energy on a Raspberry Pi from this checkout (run once with sudo; safe to re-run):
# service user, cache directory, env file, virtualenv, systemd units, kiosk autostart.
set -euo pipefail

readonly SERVICE_USER=homeenergy
readonly STATE_DIR=/var/lib/home-energy-analysis
readonly CONFIG_DIR=/etc/home-energy-analysis
readonly ENV_FILE=/etc/home-energy-analysis/dashboard.env
readonly UNIT_DIR=/etc/systemd/system
# The checkout path written in pi/systemd/*; replaced by this checkout's real path on install.
readonly UNIT_CHECKOUT=/opt/home-energy-analysis
readonly UNITS=(home-energy-dashboard.service home-energy-sync-cache.service home-energy-sync-cache.timer
  home-energy-meter.service home-energy-control.service)
readonly ENABLE=(home-energy-dashboard.service home-energy-sync-cache.timer home-energy-meter.service
  home-energy-control.service)
# Installed and enabled only when the env file sets MQTT_URL (docs/integrations.md).
readonly PUBLISH_UNIT=home-energy-publish.service
readonly KIOSK_MARK="# home-energy kiosk (added by pi/install.sh)"
# What install.sh last wrote to each file (sha256, path): a file that differs from it was edited
# by someone, and is kept beside the new one as FILE.YYYY-MM-DD.bak before it is replaced.
readonly MANIFEST=/etc/home-energy-analysis/installed.sha256

CHECKOUT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
readonly CHECKOUT
ROOT=""
DRY_RUN=0
UNITS_ONLY=0
DESKTOP_USER="${SUDO_USER:-}"
CHANGES=0
UNITS_CHANGED=0
PUT_CHANGED=0
DESKTOP_GROUP=""
KIOSK_STATE=""
WORK=""
BACKUPS=()

usage() {
  cat <<EOF
usage: sudo ./pi/install.sh [--dry-run] [--desktop-user NAME] [--units-only] [--root DIR]

Sets up this checkout ($CHECKOUT) as the kitchen display:
  system user and group '$SERVICE_USER', $STATE_DIR (the cache),
  $ENV_FILE (from pi/dashboard.env.example, only if absent),
  .venv in the checkout (pip install -e .), the systemd units (installed and enabled),
  and the kiosk autostart for the desktop user. Re-running changes only what differs.

  --dry-run            print every action without doing it
  --desktop-user NAME  who logs in to the desktop and sees the kiosk (default: the sudo caller)
  --units-only         only (re)install and enable the systemd units (used by pi/update.sh)
  --root DIR           install the files into DIR instead of / (for tests); accounts, ownership,
                       the virtualenv and starting services are skipped there
EOF
}

die() { printf 'install.sh: %s\n' "$*" >&2; exit 1; }  # one line, nothing before it
say() { printf '%s\n' "$*"; }
show() { printf '+'; printf ' %q' "$@"; printf '\n'; }

# Every change to the system goes through run: printed, and done unless --dry-run.
run() {
  show "$@"
  if (( DRY_RUN )); then return 0; fi
  "$@"
}

# Accounts, packages, the virtualenv and live services belong to the real machine: a --root
# tree gets the files only.
host_only() {
  if [[ -n "$ROOT" ]]; then
    printf 'skip (--root):'; printf ' %q' "$@"; printf '\n'
    return 0
  fi
  run "$@"
}

changed() { CHANGES=$((CHANGES + 1)); }

# Ownership is applied on the real machine only: a --root tree has no such accounts.
owner_args() {
  if [[ -n "$ROOT" ]]; then return 0; fi
  printf '%s\n' -o "$1" -g "$2"
}

has_mode_and_owner() {  # PATH MODE OWNER GROUP
  [[ "$(stat -c %a "$1")" == "${2#0}" ]] || return 1
  [[ -n "$ROOT" ]] || [[ "$(stat -c %U:%G "$1")" == "$3:$4" ]]
}

# put_dir DIR MODE OWNER GROUP: create DIR, or correct its mode and owner.
put_dir() {
  local dir="$1" mode="$2" owner="$3" group="$4"
  if [[ -d "$dir" ]] && has_mode_and_owner "$dir" "$mode" "$owner" "$group"; then
    say "unchanged: $dir"
    return 0
  fi
  local -a own
  mapfile -t own < <(owner_args "$owner" "$group")
  run install -d -m "$mode" "${own[@]}" "$dir"
  changed
}

# last_installed DEST: the sha256 install.sh recorded when it last wrote DEST (empty: never).
last_installed() {
  local manifest="$ROOT$MANIFEST" path="${1#"$ROOT"}"
  [[ -f "$manifest" ]] || return 0
  awk -v p="$path" '$2 == p { sum = $1 } END { if (sum) print sum }' "$manifest"
}

# record_installed DEST: remember what install.sh just wrote there.
record_installed() {
  if (( DRY_RUN )); then return 0; fi
  local manifest="$ROOT$MANIFEST" path="${1#"$ROOT"}" sum
  sum="$(sha256sum <"$1" | cut -d' ' -f1)"
  mkdir -p "$(dirname "$manifest")"
  { if [[ -f "$manifest" ]]; then awk -v p="$path" '$2 != p' "$manifest"; fi
    printf '%s %s\n' "$sum" "$path"; } >"$WORK/manifest"
  install -m 0644 "$WORK/manifest" "$manifest"
}

# keep_edited DEST: before DEST is replaced, keep it as DEST.YYYY-MM-DD.bak when it is not what
# install.sh last wrote there (edited by hand, or from before install.sh kept a record).
keep_edited() {
  local dest="$1" backup
  [[ -f "$dest" ]] || return 0
  if [[ "$(sha256sum <"$dest" | cut -d' ' -f1)" == "$(last_installed "$dest")" ]]; then return 0; fi
  backup="$dest.$(date +%F).bak"
  if [[ -e "$backup" ]]; then backup="$dest.$(date +%F-%H%M%S).bak"; fi
  run cp -p "$dest" "$backup"
  BACKUPS+=("$backup")
}

# put_file SRC DEST MODE OWNER GROUP: install SRC as DEST unless DEST is already identical;
# PUT_CHANGED says which. A DEST someone edited is kept beside it first (keep_edited).
put_file() {
  local src="$1" dest="$2" mode="$3" owner="$4" group="$5"
  PUT_CHANGED=0
  if [[ -f "$dest" ]] && cmp -s "$src" "$dest" && has_mode_and_owner "$dest" "$mode" "$owner" "$group"; then
    say "unchanged: $dest"
    return 0
  fi
  local -a own
  mapfile -t own < <(owner_args "$owner" "$group")
  if ! cmp -s "$src" "$dest" 2>/dev/null; then keep_edited "$dest"; fi
  run install -m "$mode" "${own[@]}" "$src" "$dest"
  record_installed "$dest"
  PUT_CHANGED=1
  changed
}

# Files in the repository name the checkout /opt/home-energy-analysis (units), the virtualenv
# @VENV@ and the env file @ENV_FILE@ (kiosk autostart files); point them at this checkout and
# this env file. Comments stay as written.
render() {  # SRC DEST
  sed -e "/^[[:space:]]*#/!s|${UNIT_CHECKOUT}|${CHECKOUT}|g" -e "/^[[:space:]]*#/!s|@VENV@|${CHECKOUT}/.venv|g" \
    -e "/^[[:space:]]*#/!s|@ENV_FILE@|${ENV_FILE}|g" "$1" >"$2"
}

parse_args() {
  while (($#)); do
    case "$1" in
      --dry-run) DRY_RUN=1 ;;
      --units-only) UNITS_ONLY=1 ;;
      --root)
        [[ $# -ge 2 ]] || die "--root needs a directory"
        ROOT="$2"; shift ;;
      --root=*) ROOT="${1#--root=}" ;;
      --desktop-user)
        [[ $# -ge 2 ]] || die "--desktop-user needs a user name"
        DESKTOP_USER="$2"; shift ;;
      --desktop-user=*) DESKTOP_USER="${1#--desktop-user=}" ;;
      -h|--help) usage; exit 0 ;;
      *) die "unknown option: $1 (./pi/install.sh --help lists the options)" ;;
    esac
    shift
  done
  if [[ -n "$ROOT" ]]; then
    [[ "$ROOT" == /* ]] || die "--root needs an absolute path, got: $ROOT"
    [[ -d "$ROOT" ]] || die "--root directory does not exist: $ROOT"
    ROOT="${ROOT%/}"
  fi
  if [[ "$DESKTOP_USER" == root ]]; then DESKTOP_USER=""; fi
}

preflight() {
  # The path goes verbatim into ExecStart= lines, which split on spaces and expand % and $.
  local unsafe='[[:space:]%$"\\|&]'
  if [[ "$CHECKOUT" =~ $unsafe || "$CHECKOUT" == *"'"* ]]; then
    die "the checkout path may not hold spaces, quotes or % \$ \\ | & (got: $CHECKOUT): clone it to $UNIT_CHECKOUT"
  fi
  if [[ -z "$ROOT" ]] && (( ! DRY_RUN )) && [[ $EUID -ne 0 ]]; then
    die "run me as root: sudo ./pi/install.sh (or --dry-run to see what I would do)"
  fi
  if [[ "$CHECKOUT" == /home/* || "$CHECKOUT" == /root/* ]]; then
    say "warning: the checkout $CHECKOUT is in a home directory, which is often private (0700): the"
    say "         '$SERVICE_USER' service user must be able to read it. $UNIT_CHECKOUT is the tested place."
  fi
  if [[ -n "$ROOT" ]]; then
    say "installing into $ROOT (accounts, ownership, the virtualenv and services are skipped there)"
  fi
  if (( DRY_RUN )); then say "dry run: nothing below is done"; fi
}

install_account() {
  if [[ -n "$ROOT" ]] || ! getent group "$SERVICE_USER" >/dev/null; then
    host_only groupadd --system "$SERVICE_USER"
    if [[ -z "$ROOT" ]]; then changed; fi
  fi
  if [[ -n "$ROOT" ]] || ! getent passwd "$SERVICE_USER" >/dev/null; then
    host_only useradd --system --gid "$SERVICE_USER" --home-dir "$STATE_DIR" --no-create-home \
      --shell /usr/sbin/nologin --comment "home-energy dashboard" "$SERVICE_USER"
    if [[ -z "$ROOT" ]]; then changed; fi
  fi
}

install_dirs_and_env() {
  put_dir "$ROOT$STATE_DIR" 0750 "$SERVICE_USER" "$SERVICE_USER"
  put_dir "$ROOT$CONFIG_DIR" 0755 root root
  local dest="$ROOT$ENV_FILE"
  if [[ -e "$dest" ]]; then
    # The user's token lives here: keep the contents, and give it exactly the documented mode
    # and owner: root:homeenergy 0640 (the service user and the kiosk's desktop user read it;
    # nobody else, and nobody but root writes it).
    say "kept: $dest (exists; never overwritten)"
    if [[ "$(stat -c %a "$dest")" != 640 ]]; then
      run chmod 0640 "$dest"
      changed
    fi
    if [[ -z "$ROOT" ]] && ! has_mode_and_owner "$dest" 640 root "$SERVICE_USER"; then
      run chown "root:$SERVICE_USER" "$dest"
      changed
    fi
  else
    put_file "$CHECKOUT/pi/dashboard.env.example" "$dest" 0640 root "$SERVICE_USER"
  fi
}

install_venv() {
  local owner python=/usr/bin/python3
  owner="$(stat -c %U "$CHECKOUT")"
  local -a as_owner=()
  if [[ "$owner" != root ]]; then as_owner=(runuser -u "$owner" --); fi
  if [[ -z "$ROOT" ]] && ! "$python" -c 'import venv, ensurepip' 2>/dev/null; then
    run apt-get install -y python3-venv
  fi
  # System site packages: Debian's python3-gi (the kiosk's GTK webview) cannot be pip-installed.
  if [[ ! -x "$CHECKOUT/.venv/bin/python" ]]; then
    host_only "${as_owner[@]}" "$python" -m venv --system-site-packages "$CHECKOUT/.venv"
  fi
  host_only "${as_owner[@]}" "$CHECKOUT/.venv/bin/python" -m pip install --quiet -e "$CHECKOUT"
}

# mqtt_configured: whether the env file gives MQTT_URL a value.
mqtt_configured() {
  [[ -r "$ROOT$ENV_FILE" ]] && grep -Eq '^[[:space:]]*(export[[:space:]]+)?MQTT_URL=[[:space:]]*["'"'"']?[^[:space:]"'"'"']' "$ROOT$ENV_FILE"
}

install_units() {
  local unit
  local -a units=("${UNITS[@]}") enable=("${ENABLE[@]}")
  if mqtt_configured; then units+=("$PUBLISH_UNIT"); enable+=("$PUBLISH_UNIT"); fi
  put_dir "$ROOT$UNIT_DIR" 0755 root root
  for unit in "${units[@]}"; do
    render "$CHECKOUT/pi/systemd/$unit" "$WORK/$unit"
    put_file "$WORK/$unit" "$ROOT$UNIT_DIR/$unit" 0644 root root
    if (( PUT_CHANGED )); then UNITS_CHANGED=1; fi
  done
  # Enable offline (a --root tree, or a chroot where systemd is not running) by creating the
  # links; on the live system also (re)load and start.
  if [[ -n "$ROOT" || ! -d /run/systemd/system ]]; then
    local -a where=() todo=()
    if [[ -n "$ROOT" ]]; then where=(--root="$ROOT"); fi
    if [[ -z "$ROOT" ]]; then say "systemd is not running here: enabling the units only; they start at the next boot"; fi
    for unit in "${enable[@]}"; do
      systemctl "${where[@]}" is-enabled --quiet "$unit" 2>/dev/null || todo+=("$unit")
    done
    if ((${#todo[@]})); then
      run systemctl "${where[@]}" --quiet enable "${todo[@]}"
      changed
    else
      say "unchanged: enabled ${enable[*]}"
    fi
    return 0
  fi
  if (( UNITS_CHANGED )); then run systemctl daemon-reload; fi
  run systemctl enable --now "${enable[@]}"
  if (( UNITS_CHANGED )); then
    run systemctl try-restart home-energy-dashboard.service home-energy-meter.service home-energy-control.service \
      "${enable[@]:${#ENABLE[@]}}"
  fi
  # Fill the cache now rather than at the next 5-minute boundary.
  if (( ! UNITS_ONLY )); then run systemctl start --no-block home-energy-sync-cache.service; fi
}

desktop_home() {
  if [[ -n "$ROOT" ]]; then
    printf '%s/home/%s\n' "$ROOT" "$DESKTOP_USER"
  else
    getent passwd "$DESKTOP_USER" | cut -d: -f6
  fi
}

# ensure_user_dir DIR: create a directory in the desktop user's home, leaving existing ones alone.
ensure_user_dir() {
  if [[ -d "$1" ]]; then return 0; fi
  local -a own
  mapfile -t own < <(owner_args "$DESKTOP_USER" "$DESKTOP_GROUP")
  run install -d -m 0755 "${own[@]}" "$1"
  changed
}

# install_labwc_autostart SRC DEST: a new autostart gets the kiosk's file; an existing one keeps
# its own lines and gets the kiosk's commands appended (earlier kiosk lines are replaced).
install_labwc_autostart() {
  local src="$1" dest="$2" rendered merged
  rendered="$WORK/labwc-autostart"
  render "$src" "$rendered"
  if [[ -f "$dest" ]] && ! cmp -s "$rendered" "$dest"; then
    merged="$WORK/labwc-autostart-merged"
    {
      grep -v -e 'home-energy-kiosk' -e "^$KIOSK_MARK\$" "$dest" || true
      printf '%s\n' "$KIOSK_MARK"
      grep -v -e '^[[:space:]]*#' -e '^[[:space:]]*$' "$rendered"
    } >"$merged"
    rendered="$merged"
  fi
  put_file "$rendered" "$dest" 0644 "$DESKTOP_USER" "$DESKTOP_GROUP"
}

# install_desktop_entry SRC DEST: the .desktop file is the kiosk's own, replaced when it changes.
install_desktop_entry() {
  local src="$1" dest="$2" rendered
  rendered="$WORK/$(basename "$dest")"
  render "$src" "$rendered"
  put_file "$rendered" "$dest" 0644 "$DESKTOP_USER" "$DESKTOP_GROUP"
}

install_kiosk() {
  local -a autostarts desktops
  shopt -s nullglob
  autostarts=("$CHECKOUT"/kiosk/*autostart*)
  desktops=("$CHECKOUT"/kiosk/*.desktop)
  shopt -u nullglob
  KIOSK_STATE="installed"
  if (( ${#autostarts[@]} == 0 && ${#desktops[@]} == 0 )); then
    KIOSK_STATE="missing"
    say "kiosk: this checkout has no kiosk/*autostart* or kiosk/*.desktop yet, so no browser starts at"
    say "       login; the dashboard still runs. Update the checkout and run install.sh again."
    return 0
  fi
  if [[ -z "$DESKTOP_USER" ]]; then
    KIOSK_STATE="no-user"
    say "kiosk: skipped: no desktop user. Run with sudo from the desktop user's account, or pass --desktop-user NAME."
    return 0
  fi
  local home
  if [[ -z "$ROOT" ]] && ! getent passwd "$DESKTOP_USER" >/dev/null; then
    die "desktop user '$DESKTOP_USER' does not exist"
  fi
  home="$(desktop_home)"
  DESKTOP_GROUP="$DESKTOP_USER"
  if [[ -z "$ROOT" ]]; then DESKTOP_GROUP="$(id -gn "$DESKTOP_USER")"; fi
  # The kiosk reads HOST and PORT from the dashboard's env file (root:homeenergy 0640), so the
  # desktop user joins the group; it takes effect at the next login.
  if [[ -n "$ROOT" ]] || ! id -nG "$DESKTOP_USER" | tr ' ' '\n' | grep -qx "$SERVICE_USER"; then
    host_only usermod -a -G "$SERVICE_USER" "$DESKTOP_USER"
    if [[ -z "$ROOT" ]]; then changed; fi
  fi
  ensure_user_dir "$home"
  ensure_user_dir "$home/.config"
  if (( ${#autostarts[@]} )); then
    # labwc (Raspberry Pi OS's desktop since late 2024) runs ~/.config/labwc/autostart at login.
    local chosen="${autostarts[0]}" f
    for f in "${autostarts[@]}"; do
      if [[ "$(basename "$f")" == *labwc* ]]; then chosen="$f"; fi
    done
    if (( ${#autostarts[@]} > 1 )); then say "kiosk: several autostart files; using $(basename "$chosen") for labwc"; fi
    ensure_user_dir "$home/.config/labwc"
    install_labwc_autostart "$chosen" "$home/.config/labwc/autostart"
  fi
  local desktop
  for desktop in "${desktops[@]}"; do
    # X11 sessions start ~/.config/autostart/*.desktop at login.
    ensure_user_dir "$home/.config/autostart"
    install_desktop_entry "$desktop" "$home/.config/autostart/$(basename "$desktop")"
  done
}

# dashboard_url: where the dashboard listens, as the program reads the env file (the same rule
# the units, pi/update.sh and the kiosk follow); without the program yet, HOST and PORT read here.
dashboard_url() {
  local env_file="$ROOT$ENV_FILE" url host port
  [[ -f "$env_file" ]] || env_file="$CHECKOUT/pi/dashboard.env.example"
  if [[ -x "$CHECKOUT/.venv/bin/home-energy" ]] \
      && url="$(env -i PATH=/usr/bin:/bin "$CHECKOUT/.venv/bin/home-energy" config --health-url \
                --env-file "$env_file" 2>/dev/null)"; then
    printf '%s\n' "${url%api/health}"
    return 0
  fi
  host="$(sed -n 's/^[[:space:]]*HOST=[[:space:]]*//p' "$env_file" | tail -n 1)"
  port="$(sed -n 's/^[[:space:]]*PORT=[[:space:]]*//p' "$env_file" | tail -n 1)"
  case "${host:-127.0.0.1}" in 0.0.0.0|127.0.0.1) host=127.0.0.1 ;; esac
  printf 'http://%s:%s/\n' "$host" "${port:-5050}"
}

summary() {
  say ""
  if (( DRY_RUN )); then
    say "dry run: $CHANGES change(s) would be made."
  elif (( CHANGES == 0 )); then
    say "nothing changed: already installed."
  else
    say "done: $CHANGES change(s)."
  fi
  local backup
  if ((${#BACKUPS[@]})); then
    say "kept your edited copies (install.sh replaced these files; compare and carry your changes over):"
    for backup in "${BACKUPS[@]}"; do say "  $backup"; done
  fi
  (( UNITS_ONLY )) && return 0
  local url
  url="$(dashboard_url)"
  cat <<EOF

The dashboard: ${url}   (HOST and PORT in $ENV_FILE; the kiosk reads them there too)

Next steps
  1. Put your Amber token in the env file (demo data until you do):
       sudo nano $ENV_FILE            # AMBER_TOKEN=psk_...
       sudo systemctl restart home-energy-dashboard.service
       sudo systemctl start home-energy-sync-cache.service
  2. Check it:  curl -s ${url}api/health
                systemctl list-timers home-energy-sync-cache.timer
  3. Logs:      journalctl -u home-energy-dashboard.service -u home-energy-sync-cache.service -e
EOF
  case "$KIOSK_STATE" in
    installed) say "  4. Kiosk: log out and in (or reboot) as $DESKTOP_USER to start the full-screen display at $url" ;;
    no-user) say "  4. Kiosk: run again with --desktop-user NAME to start the display at login." ;;
    *) say "  4. Kiosk: not set up yet (see above)." ;;
  esac
  say "  5. Updates: ./pi/update.sh from $CHECKOUT (see docs/deploy.md)."
}

main() {
  parse_args "$@"
  preflight
  # Rendered copies of units and kiosk files, compared with what is installed.
  WORK="$(mktemp -d)"
  trap 'rm -rf "$WORK"' EXIT
  if (( UNITS_ONLY )); then
    install_units
    summary
    return 0
  fi
  install_account
  install_dirs_and_env
  install_venv
  install_units
  install_kiosk
  summary
}

main "$@"
