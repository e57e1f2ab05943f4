#!/usr/bin/env bash
# Builds hnm's reference site with pkgdown (home page from README.md, every help page with
# its examples run and their plots, both vignettes) and checks it: tools/check-site.R looks for
# broken internal links, R errors in example output and the plots of the plotting pages, and
# headless Chromium takes a screenshot of each kind of page.
#   bash tools/site.sh [DIR]   DIR defaults to ~/.cache/hnm/<checkout>/site (never the tree)
# Then open DIR/index.html in a browser. hnm is installed into a library beside DIR with
# the cargo cache of tools/cache.sh (the first build compiles the crates: about 5 minutes),
# unless HNM_SITE_LIB names a library that already holds this hnm (.ci/run passes the one
# R CMD check installed).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:$HOME/.cargo/bin"
source tools/cache.sh
site="${1:-$hnm_cache/site}"
library="${HNM_SITE_LIB:-$hnm_cache/site-library}"
screenshots="$site-screenshots"
# R's, pkgdown's and Chromium's temporary files go into one directory removed at the end.
export TMPDIR=$(mktemp -d "${TMPDIR:-/tmp}/hnm-site.XXXXXX")
trap 'rm -rf "$TMPDIR"' EXIT
started=$SECONDS
phase() { echo "== site: $1 ($(( SECONDS - started )) s elapsed)"; }

if [ -z "${HNM_SITE_LIB:-}" ]; then
  phase "installing hnm into $library"
  mkdir -p "$library"
  HNM_TARGET_DIR="$hnm_target_dir" HNM_CARGO_HOME="$(hnm_offline_cargo_home)" R CMD INSTALL -l "$library" .
fi
export R_LIBS="$library${R_LIBS:+:$R_LIBS}"

phase "pkgdown::build_site() into $site (runs every example and both vignettes: about 2 minutes)"
rm -rf "$site"
# pkgdown.internet = FALSE: no look-up of the package on CRAN (the build works offline).
Rscript -e 'options(pkgdown.internet = FALSE)
  pkgdown::build_site(".", override = list(destination = commandArgs(TRUE)[1]),
                                install = FALSE, new_process = FALSE, preview = FALSE)' "$site"

# Debian's pkgdown points MathJax at file:///usr/share/javascript/mathjax (libjs-mathjax),
# which no visitor of a published site has: ship the parts that render TeX in HTML-CSS with
# web fonts inside the site and point every page at them.
mathjax=/usr/share/javascript/mathjax
if grep -rlq "file://$mathjax/MathJax.js" "$site"; then
  phase "copying MathJax into the site"
  for part in MathJax.js config/TeX-AMS-MML_HTMLorMML.js extensions jax/input/TeX jax/input/MathML jax/element \
              jax/output/HTML-CSS/jax.js jax/output/HTML-CSS/config.js jax/output/HTML-CSS/fonts/TeX jax/output/HTML-CSS/autoload \
              fonts/HTML-CSS/TeX/woff localization/en; do
    mkdir -p "$site/deps/mathjax/$(dirname "$part")"
    cp -rL "$mathjax/$part" "$site/deps/mathjax/$part"
  done
  grep -rl "file://$mathjax/MathJax.js" "$site" --include='*.html' | while read -r page; do
    up=$(dirname "${page#"$site"/}" | sed -e 's|[^/.][^/]*|..|g' -e 's|^\.$||')
    sed -i -e "s|<script src=\"file://$mathjax/MathJax.js\"[^>]*>|<script src=\"${up:+$up/}deps/mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML\">|" \
           -e 's|<script src="https://cdnjs.cloudflare.com/ajax/libs/mathjax/[^"]*/config/TeX-AMS-MML_HTMLorMML.js"[^>]*></script>||' "$page"
  done
fi

phase "checking links, example output and plots"
Rscript tools/check-site.R "$site"

phase "screenshots in headless Chromium into $screenshots"
rm -rf "$screenshots"
mkdir -p "$screenshots"
chromium_bin=$(command -v chromium || command -v chromium-browser)
for page in index.html reference/index.html reference/plot.hnm_fit.html reference/profile.hnm_fit.html \
            articles/hnm.html; do
  png="$screenshots/$(echo "$page" | tr / _ | sed 's/\.html$//').png"
  "$chromium_bin" --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1280,1600 --virtual-time-budget=10000 \
    --screenshot="$png" "file://$site/$page" >/dev/null 2>&1
  # A blank page compresses to a few kB; a rendered one is far larger.
  [ "$(stat -c %s "$png" 2>/dev/null || echo 0)" -gt 20000 ] || { echo "no screenshot of $page"; exit 1; }
  echo "screenshot: $png"
done
phase "done: open $site/index.html"
