# The local stack's system package: Chromium, for the status page's browser test.
# `make install` runs `browser` (INSTALL_EXTRAS). It installs Debian's chromium only when
# chromium is missing and we are root with apt-get; otherwise it says why not
# (tests/local/test_statuspage.py then skips with the same reason). See mk/debian.mk.

INSTALL_EXTRAS += browser

.PHONY: browser

browser:
	$(call debian_package,chromium,chromium,status page browser test,the browser test will skip)
