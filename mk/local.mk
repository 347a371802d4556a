# The local stack's system package: Chromium, for the status page's browser test.
# `make install` runs `browser` (INSTALL_EXTRAS). It installs Debian's chromium only when
# /usr/bin/chromium is missing and we are root with apt-get; otherwise it says why not
# (tests/local/test_statuspage.py then skips with the same reason).

INSTALL_EXTRAS += browser

.PHONY: browser

browser:
	@if [ -x /usr/bin/chromium ]; then \
		echo "chromium: $$(/usr/bin/chromium --version 2>/dev/null || echo present)"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing Debian's chromium (status page browser test)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	else \
		echo "chromium: not installed (needs root and apt-get); the browser test will skip"; \
	fi
