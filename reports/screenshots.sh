#!/usr/bin/env bash
# make screenshots: produce real results (certify, load, capacity against the embedded
# reference), render their reports with `rtcomm-harness report`, and take PNGs of them with
# headless Chromium (Debian package) into docs/img/.
#   SHOTS_WORK=dir  keep/reuse the results there (default: a fresh temporary directory)
#   SHOTS_OUT=dir   where the PNGs go (default docs/img)
#   CHROMIUM=path   the browser (default chromium)
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
BIN=${BIN:-bin/rtcomm-harness}
WORK=${SHOTS_WORK:-$(mktemp -d -t rtcomm-shots.XXXXXX)}
OUT=${SHOTS_OUT:-docs/img}
CHROMIUM=${CHROMIUM:-chromium}
command -v "$CHROMIUM" >/dev/null || { echo "screenshots: $CHROMIUM not found (apt-get install chromium)" >&2; exit 2; }
mkdir -p "$WORK" "$OUT"
"$GO" build -ldflags "${LDFLAGS:-}" -o "$BIN" ./cmd/rtcomm-harness

# A run whose SLO or certification fails still wrote its results: the report shows why.
# Only missing results stop the script.
need() { [ -f "$1" ] || { echo "screenshots: $1 was not written" >&2; exit 2; }; }
[ -f "$WORK/bundle/verdicts.json" ] || "$BIN" certify --out "$WORK/bundle" >"$WORK/certify.log" 2>&1 || true
need "$WORK/bundle/verdicts.json"
[ -f "$WORK/load/summary.json" ] || "$BIN" --log-level warn load --endpoints 500 --rate 20 --duration 20s \
	--slo 'setup.p99<250ms,errors<10%' --baseline --out "$WORK/load" >"$WORK/load.log" 2>&1 || true
need "$WORK/load/summary.json"
[ -f "$WORK/capacity/capacity.json" ] || "$BIN" --log-level warn capacity --start 10 --max 640 --steady 6s --warmup 2s \
	--endpoints 300 --out "$WORK/capacity" >"$WORK/capacity.log" 2>&1 || true
need "$WORK/capacity/capacity.json"

"$BIN" report cert "$WORK/bundle"
"$BIN" report load "$WORK/load"
"$BIN" report load "$WORK/capacity" --users 200000 --bhca 0.8 --hold 3m --registered-share 0.6 --headroom 1.5

profile=$(mktemp -d -t rtcomm-chromium.XXXXXX)
trap 'rm -rf "$profile"' EXIT
shot() { # html png width,height
	"$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking \
		--disable-component-update --disable-sync --hide-scrollbars --user-data-dir="$profile" \
		--screenshot="$2" --window-size="$3" "file://$(realpath "$1")" >/dev/null 2>&1
	need "$2"
	echo "screenshot: $2"
}
shot "$WORK/bundle/report.html" "$OUT/report-cert.png" 1280,1400
shot "$WORK/load/report.html" "$OUT/report-load.png" 1280,3050
shot "$WORK/capacity/report.html" "$OUT/report-capacity.png" 1280,1900
echo "results and reports: $WORK"
