"""The soak report names the operation a schemathesis failure was found on, read from schemathesis' console report."""

from __future__ import annotations

from bench.soak.attack import first_examples

# Trimmed from a real `schemathesis run` report: a failure in the stateful phase comes after the per-operation ones.
OUTPUT = """
_______________________ PUT /api/v1/admin/org-units/{id} _______________________
1. Test Case ID: ab12CD

- ST401 Unexpected response to invalid authentication

[429] Too Many Requests:

________________________________ Stateful tests ________________________________
1. Test Case ID: P96JXB

- ST202 Schema-valid request rejected

    Valid data should have been accepted

[400] Bad Request:

    curl -X POST -d '{}' http://127.0.0.1:59461/api/v1/calls/1a18f997-5cd1-58dc-8bda-8ddd2dada3fa/conference
"""


def test_a_stateful_failure_is_not_charged_to_the_operation_listed_before_it() -> None:
    examples = first_examples(OUTPUT)
    assert examples["ST401"] == "PUT /api/v1/admin/org-units/{id}; answered 429×1"
    assert examples["ST202"] == "Stateful tests; answered 400×1"
