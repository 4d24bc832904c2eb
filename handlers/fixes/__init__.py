"""Fix-it proposals: records generated from findings, validated twice, with provider steps."""
