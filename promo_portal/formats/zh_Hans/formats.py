"""Number formats for Simplified Chinese pages, over Django's own zh_Hans formats.

Django's zh_Hans groups digits by none (``THOUSAND_SEPARATOR`` is empty); merchants' finance
tools in mainland China write amounts as 1,234,567.89, so the portal does too. Dates and times
keep Django's zh_Hans formats."""

DECIMAL_SEPARATOR = "."
THOUSAND_SEPARATOR = ","
NUMBER_GROUPING = 3
