"""Helpers each chapter calls: its figures, its paper-vs-ours tables and claims, written once and tested."""
