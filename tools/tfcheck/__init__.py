"""Offline Terraform checks."""
