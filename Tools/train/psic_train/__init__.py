"""PSIC training and export tools: the conv+GDN synonymous-level model of ../shared/DESIGN.md."""
