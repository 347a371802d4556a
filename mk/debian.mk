# Debian packages the project's checks need, installed by `make install` (INSTALL_EXTRAS).
#
# $(call debian_package,PACKAGE,COMMAND,WHY,WITHOUT) in a recipe: print COMMAND's version
# when it is on PATH; otherwise install PACKAGE when we are root with apt-get; otherwise
# say why not and WITHOUT (what then skips). Never fails `make install`.
define debian_package
	@if command -v $(2) >/dev/null 2>&1; then \
		echo "$(1): $$($(2) --version 2>/dev/null | head -n 2 | tr '\n' ' ')"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing Debian's $(1) ($(3))"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(1); \
	else \
		echo "$(1): not installed (needs root and apt-get); $(4)"; \
	fi
endef
