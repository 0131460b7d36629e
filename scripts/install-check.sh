#!/usr/bin/env bash
# The install path README promises, checked end to end: packs sessmig (`npm pack`, as a release
# would), installs the tarball into a temporary prefix (`npm install -g --prefix TMP`), and runs the
# INSTALLED sessmig — never the clone's — through `--version` and one push and pull on the default
# remote, with a real opencode session (a tiny hand-made one, through `opencode import`) on a
# simulated host (its own HOME and XDG dirs). A file the package leaves out fails here.
#
#   scripts/install-check.sh            # uses node_modules' opencode-ai (the devDependency)
#   SESSMIG_INSTALL_CHECK_OPENCODE=/path/to/opencode scripts/install-check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
repo_root=$PWD

fail() { echo "install-check: FAILED: $*" >&2; exit 1; }
step() { echo "install-check: $*" >&2; }

opencode_bin=${SESSMIG_INSTALL_CHECK_OPENCODE:-}
if [ -z "$opencode_bin" ]; then
  for candidate in node_modules/opencode-ai/bin/opencode.exe node_modules/.bin/opencode; do
    if [ -e "$candidate" ]; then opencode_bin=$(realpath "$candidate"); break; fi
  done
fi
[ -n "$opencode_bin" ] && [ -x "$opencode_bin" ] || fail "no opencode binary (npm ci installs the opencode-ai devDependency; or set SESSMIG_INSTALL_CHECK_OPENCODE)"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/sessmig-install-check-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
start=$(date +%s)

step "npm pack"
tarball=$(npm pack --pack-destination "$tmp" --silent 2>"$tmp/pack.err" | tail -n 1) || { cat "$tmp/pack.err" >&2; fail "npm pack"; }
[ -f "$tmp/$tarball" ] || fail "npm pack made no tarball ($tarball)"

step "npm install -g --prefix (tarball $tarball)"
npm install -g --prefix "$tmp/prefix" "$tmp/$tarball" --prefer-offline --no-audit --no-fund --loglevel=error >"$tmp/install.log" 2>&1 \
  || { cat "$tmp/install.log" >&2; fail "npm install -g of the tarball"; }
sessmig="$tmp/prefix/bin/sessmig"
[ -x "$sessmig" ] || fail "the installed package has no bin/sessmig"

expected=$(node -p "require('./package.json').version")
got=$("$sessmig" --version)
[ "$got" = "$expected" ] || fail "installed sessmig --version printed '$got', package.json says '$expected'"
step "installed sessmig --version: $got"

# A simulated host: nothing of the user's own opencode or sessmig state is touched.
export HOME="$tmp/home" XDG_DATA_HOME="$tmp/xdg/data" XDG_CONFIG_HOME="$tmp/xdg/config"
export XDG_CACHE_HOME="$tmp/xdg/cache" XDG_STATE_HOME="$tmp/xdg/state"
export OPENCODE_DISABLE_AUTOUPDATE=1 OPENCODE_DISABLE_MODELS_FETCH=1 OPENCODE_DISABLE_LSP_DOWNLOAD=1
export SESSMIG_OPENCODE="$opencode_bin" NO_COLOR=1
export GIT_CONFIG_NOSYSTEM=1 GIT_AUTHOR_NAME=check GIT_AUTHOR_EMAIL=check@sessmig.invalid GIT_COMMITTER_NAME=check GIT_COMMITTER_EMAIL=check@sessmig.invalid
unset SESSMIG_REMOTE SESSMIG_WORKTREE SESSMIG_ENCRYPT SESSMIG_KEY
mkdir -p "$HOME" "$XDG_DATA_HOME" "$XDG_CONFIG_HOME" "$XDG_CACHE_HOME" "$XDG_STATE_HOME"

old="$tmp/work/old-place/app"
new="$tmp/work/new-place/app"
mkdir -p "$old"
git -C "$old" init -q -b main
echo "# install check" >"$old/README.md"
git -C "$old" add README.md
git -C "$old" commit -q --no-gpg-sign -m "initial commit"

session=$(node -p "require('$repo_root/scripts/install-check-session.json').info.id")
(cd "$old" && "$opencode_bin" import "$repo_root/scripts/install-check-session.json" >"$tmp/import.out" 2>"$tmp/import.err") || true
grep -q "Imported session: $session" "$tmp/import.out" || { cat "$tmp/import.out" "$tmp/import.err" >&2; fail "opencode import of the test session"; }

step "installed sessmig push --migrate (default remote)"
(cd "$old" && "$sessmig" push --migrate --json >"$tmp/push.json" 2>"$tmp/push.err") || { cat "$tmp/push.err" >&2; fail "installed sessmig push"; }
node -e '
  const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  if (r.status !== "pushed" || !r.sessions.some((s) => s.id === process.argv[2])) { console.error(JSON.stringify(r, null, 2)); process.exit(1); }
  if (!r.remote.startsWith("file://" + process.env.XDG_DATA_HOME + "/sessmig/remote")) { console.error("not the default remote: " + r.remote); process.exit(1); }
' "$tmp/push.json" "$session" || fail "push did not push the session to the default remote"

step "installed sessmig pull --migrate (a clone of the repo in another folder)"
mkdir -p "$(dirname "$new")"
git clone -q "$old" "$new"
(cd "$new" && "$sessmig" pull --migrate --json >"$tmp/pull.json" 2>"$tmp/pull.err") || { cat "$tmp/pull.err" >&2; fail "installed sessmig pull"; }
node -e '
  const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  const s = (r.sessions || []).find((x) => x.id === process.argv[2]);
  if (!s || !["new", "replace"].includes(s.action)) { console.error(JSON.stringify(r, null, 2)); process.exit(1); }
' "$tmp/pull.json" "$session" || fail "pull did not bring the session in"
dir=$("$opencode_bin" db "SELECT directory FROM session WHERE id = '$session'" --format json 2>/dev/null | node -e 'let t="";process.stdin.on("data",(d)=>t+=d).on("end",()=>{const r=JSON.parse(t);process.stdout.write(r[0]?r[0].directory:"")})')
[ "$dir" = "$(realpath "$new")" ] || fail "after pull the session's directory is '$dir', not the new place $(realpath "$new")"

size=$(du -sk "$tmp/prefix" | cut -f1)
step "ok: packed, installed ($((size / 1024)) MB in the prefix), --version, push and pull on the default remote ($(( $(date +%s) - start )) s)"
