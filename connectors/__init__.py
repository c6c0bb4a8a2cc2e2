"""Vendor knowledge: inbound alert parsers and signature checks, outbound tracker clients. No database code."""
