"""``DocumentJob`` is strict and names each invalid field."""

from __future__ import annotations

from typing import Any

import pydantic
import pytest

from ecosign_orchestrator.core import errors
from ecosign_orchestrator.ecosign import validate_payload
from ecosign_orchestrator.ecosign.lifecycle import implied_lifecycle
from ecosign_orchestrator.ecosign.model import DocumentJob

DOC = "5E3C2B8A-0F1D-4E7A-9B6C-1D2E3F4A5B6C"


def fields_of(body: dict[str, Any]) -> set[str]:
    with pytest.raises(pydantic.ValidationError) as info:
        DocumentJob.model_validate(body)
    return {".".join(str(p) for p in e["loc"]) for e in info.value.errors()}


def test_ids_are_normalised_and_false_equals_absent() -> None:
    a = DocumentJob.model_validate(
        {"document_entity_id": DOC, "actions": {"protect": True, "nda": False}, "forensic": {}}
    )
    b = DocumentJob.model_validate(
        {"document_entity_id": DOC.lower(), "actions": {"protect": True}}
    )
    assert a.document_entity_id == DOC.lower()
    assert a.intent_key() == b.intent_key()


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        (
            {"document_entity_id": "not-a-uuid", "actions": {"protect": True}},
            {"document_entity_id"},
        ),
        ({"document_entity_id": 42, "actions": {"protect": True}}, {"document_entity_id"}),
        ({"document_entity_id": DOC, "actions": {}}, {"actions"}),
        ({"document_entity_id": DOC, "actions": {"protect": False}}, {"actions"}),
        ({"document_entity_id": DOC, "actions": {"protect": "yes"}}, {"actions.protect"}),
        (
            {"document_entity_id": DOC, "actions": {"protect": True, "teleport": True}},
            {"actions.teleport"},
        ),
        (
            {"document_entity_id": DOC, "actions": {"protect": True}, "forensic": {"tsa": 1}},
            {"forensic.tsa"},
        ),
        ({"document_entity_id": DOC, "actions": {"protect": True}, "extra": 1}, {"extra"}),
        ({"actions": {"protect": True}}, {"document_entity_id"}),
        (
            {"document_entity_id": DOC, "actions": {"protect": True}, "metadata": {"a": "x\x00y"}},
            {"metadata"},
        ),
        (
            {"document_entity_id": DOC, "actions": {"protect": True}, "metadata": {"a": "\ud800"}},
            {"metadata"},
        ),
        (
            {
                "document_entity_id": DOC,
                "actions": {"protect": True},
                "metadata": {"a": float("nan")},
            },
            {"metadata"},
        ),
    ],
)
def test_invalid_bodies_name_each_field(body: dict[str, Any], fields: set[str]) -> None:
    assert fields_of(body) == fields


def test_metadata_nesting_is_limited_to_32_levels() -> None:
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(32):
        node["x"] = {}
        node = node["x"]
    assert fields_of({"document_entity_id": DOC, "actions": {"nda": True}, "metadata": deep}) == {
        "metadata"
    }


def test_enqueue_validation_names_the_field() -> None:
    with pytest.raises(errors.InvalidJob) as info:
        validate_payload({"document_entity_id": DOC, "actions": {}})
    assert info.value.field == "actions" and "at least one" in info.value.reason


def test_lifecycle_mapping_table() -> None:
    def job(actions: dict[str, bool], forensic: dict[str, bool]) -> DocumentJob:
        return DocumentJob.model_validate(
            {"document_entity_id": DOC, "actions": actions, "forensic": forensic}
        )

    assert (
        implied_lifecycle(job({"protect": True}, {"bitcoin": True}), completed=True) == "anchored"
    )
    assert implied_lifecycle(job({"sign_owner": True}, {"tsa": True}), completed=True) == "signed"
    assert implied_lifecycle(job({"nda": True}, {}), completed=True) == "protected"
    assert implied_lifecycle(job({"protect": True}, {"polygon": True}), completed=False) is None


def _staged(**metadata: Any) -> DocumentJob:
    return DocumentJob.model_validate(
        {
            "document_entity_id": DOC,
            "actions": {"sign_workflow": True},
            "forensic": {"tsa": True},
            "metadata": metadata,
        }
    )


def test_a_workflow_stage_is_its_own_flow_identity() -> None:
    w1, w2 = "a" * 64, "b" * 64
    plain = _staged()
    initial = _staged(anchor_stage="initial", step_index=0, witness_hash=w1)
    intermediate = _staged(anchor_stage="intermediate", step_index=1, witness_hash=w2)
    keys = {plain.intent_key(), initial.intent_key(), intermediate.intent_key()}
    assert len(keys) == 3
    assert _staged(anchor_stage="initial", step_index=0, witness_hash=w1).intent_key() == (
        initial.intent_key()
    )
    assert _staged(anchor_stage="initial", step_index=1, witness_hash=w1).intent_key() != (
        initial.intent_key()
    )
    # An unstaged intent keeps the key it always had (existing flows are still found).
    assert plain.intent_key() == f"ecosign:{DOC.lower()}:sign_workflow:tsa:custody"


def test_only_an_unstaged_flow_or_the_final_stage_builds_the_artifact() -> None:
    assert _staged().builds_artifact
    assert _staged(anchor_stage="final", step_index=2).builds_artifact
    assert not _staged(anchor_stage="initial").builds_artifact
    assert not _staged(step_index=1).builds_artifact
    assert implied_lifecycle(_staged(anchor_stage="intermediate"), completed=True) == (
        "in_signature_flow"
    )


@pytest.mark.parametrize(
    ("metadata", "reason"),
    [
        ({"anchor_stage": "middle"}, "anchor_stage must be one of initial, intermediate, final"),
        ({"step_index": -1}, "step_index must be a whole number"),
        ({"step_index": True}, "step_index must be a whole number"),
        ({"witness_hash": "XYZ"}, "witness_hash must be 64 lowercase hex"),
    ],
)
def test_malformed_stage_fields_are_refused_naming_them(
    metadata: dict[str, Any], reason: str
) -> None:
    with pytest.raises(pydantic.ValidationError) as info:
        _staged(**metadata)
    [error] = info.value.errors()
    assert error["loc"] == ("metadata",) and reason in error["msg"]


@pytest.mark.parametrize(
    ("step_inputs", "field", "says"),
    [
        (
            {"build_artifact": {"artifact_version": "../../0b6c8a5e-other/evil"}},
            "metadata.step_inputs.build_artifact.artifact_version",
            "never a path",
        ),
        (
            {"build_artifact": {"artifact_version": "v1\n"}},
            "metadata.step_inputs.build_artifact.artifact_version",
            "a version",
        ),
        (
            {"append_tsa": {"signer_id": "x" * 500_000}},
            "metadata.step_inputs.append_tsa.signer_id",
            "a lowercase UUID",
        ),
        (
            {"encrypt_source": {"metadata": {"original_name": {"deep": {"deeper": {}}}}}},
            "metadata.step_inputs.encrypt_source.metadata",
            "original_name",
        ),
        (
            {"encrypt_source": {"encrypted_data": "not base64!"}},
            "metadata.step_inputs.encrypt_source.encrypted_data",
            "base64",
        ),
    ],
)
def test_step_inputs_have_a_type_a_pattern_and_a_size(
    step_inputs: dict[str, Any], field: str, says: str
) -> None:
    payload = {
        "document_entity_id": "0b6c8a5e-5d3f-4f5e-9a41-2f4b8f1a9c10",
        "actions": {"protect": True},
        "metadata": {"step_inputs": step_inputs},
    }
    with pytest.raises(errors.InvalidJob) as refused:
        validate_payload(payload)
    assert refused.value.field == field
    assert says in refused.value.reason


def test_well_formed_step_inputs_are_accepted() -> None:
    inputs = {
        "build_artifact": {"artifact_version": "v2"},
        "append_tsa": {"signer_id": "0b6c8a5e-5d3f-4f5e-9a41-2f4b8f1a9c10"},
        "encrypt_source": {
            "encrypted_data": "QUJDRA==",
            "metadata": {
                "original_name": "contrato final.pdf",
                "original_mime": "application/pdf",
                "original_size": 48213,
            },
        },
    }
    payload = {
        "document_entity_id": "0b6c8a5e-5d3f-4f5e-9a41-2f4b8f1a9c10",
        "actions": {"protect": True},
        "metadata": {"step_inputs": inputs},
    }
    assert validate_payload(payload)["metadata"]["step_inputs"] == inputs


@pytest.mark.parametrize("witness", ["ab" * 32 + "\n", "ab" * 31 + "a\uff11"])
def test_a_witness_hash_is_64_ascii_hex_digits_and_nothing_more(witness: str) -> None:
    with pytest.raises(ValueError, match="witness_hash must be 64 lowercase hex"):
        DocumentJob.model_validate(
            {
                "document_entity_id": "0b6c8a5e-5d3f-4f5e-9a41-2f4b8f1a9c10",
                "actions": {"sign_workflow": True},
                "metadata": {"witness_hash": witness},
            }
        )
