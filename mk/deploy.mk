# Deploying to Google Cloud (docs/deploy.md): make package && make plan && make deploy
#
# TF_DIR is the Terraform root module to run (default: the example, which reads its
# settings from terraform.tfvars there). Real deployments are run by people on their own
# machines with the `terraform` on their PATH and their own Google credentials.

VENV ?= .venv
PYTHON ?= $(VENV)/bin/python
TERRAFORM ?= terraform
TF_DIR ?= terraform/examples/basic
FUNCTION_SOURCE_ZIP ?= build/function-source.zip
# Extra arguments for plan/apply, e.g. TF_ARGS='-var-file=prod.tfvars'.
TF_ARGS ?=

TF_VARS = -var 'function_source_zip=$(abspath $(FUNCTION_SOURCE_ZIP))'

.PHONY: package plan deploy vm-image

package: $(VENV)/.installed
	$(PYTHON) tools/package_functions.py --output $(FUNCTION_SOURCE_ZIP)

$(TF_DIR)/.terraform:
	$(TERRAFORM) -chdir=$(TF_DIR) init -input=false

plan: package $(TF_DIR)/.terraform
	$(TERRAFORM) -chdir=$(TF_DIR) plan -input=false $(TF_VARS) $(TF_ARGS)

deploy: package $(TF_DIR)/.terraform
	$(TERRAFORM) -chdir=$(TF_DIR) apply $(TF_VARS) $(TF_ARGS)

vm-image:
	@echo "The GPU VMs boot from an image built once (NVIDIA driver, vLLM, the yoyo agent, systemd units)."
	@echo "Read vm/README.md, then run:"
	@echo "  vm/image/build-image.sh --project PROJECT --staging gs://WEIGHTS_BUCKET/image-build \\"
	@echo "      --service-account yoyo-vm-agent@PROJECT.iam.gserviceaccount.com"
