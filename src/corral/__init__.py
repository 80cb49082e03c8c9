"""Corral: one control plane for every agent runtime."""
