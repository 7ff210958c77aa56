"""Rollback re-checks recorded evidence without a registry; the operator's floor; keyless identities."""

from __future__ import annotations

import pytest

from apprelease.trust import (
    Identity,
    Mode,
    SignatureUntrusted,
    TrustPolicy,
    effective_mode,
    recheck,
    recheck_provenance,
)
from apprelease.trust.policy import keyless_evidence

from .trustkit import new_key, trusted

ISSUER = "https://token.actions.githubusercontent.com"
SUBJECT = "https://github.com/shop/web/.github/workflows/release.yml@refs/tags/v1.4.2"


def test_evidence_of_a_key_still_trusted_passes_and_of_a_removed_key_is_untrusted() -> None:
    old, new = new_key(), new_key()
    evidence = trusted(old).fingerprint
    recheck(evidence, TrustPolicy(mode=Mode.REQUIRED, keys=(trusted(old), trusted(new))), "revision 5")
    with pytest.raises(SignatureUntrusted, match="revision 5 was verified by key 'SHA256:"):
        recheck(evidence, TrustPolicy(mode=Mode.REQUIRED, keys=(trusted(new),)), "revision 5")


def test_unverified_history_passes_only_when_nothing_is_required() -> None:
    recheck(None, TrustPolicy(), "revision 1")
    recheck(None, TrustPolicy(mode=Mode.IF_PRESENT, keys=(trusted(new_key()),)), "revision 1")
    with pytest.raises(SignatureUntrusted, match="without verified signature"):
        recheck(None, TrustPolicy(mode=Mode.REQUIRED, keys=(trusted(new_key()),)), "revision 1")


def test_keyless_evidence_is_rechecked_against_identities() -> None:
    evidence = keyless_evidence(ISSUER, SUBJECT)
    exact = TrustPolicy(mode=Mode.REQUIRED, identities=(Identity(ISSUER, subject=SUBJECT),))
    pattern = TrustPolicy(
        mode=Mode.REQUIRED, identities=(Identity(ISSUER, subject_regex=r"https://github\.com/shop/.+@refs/tags/v.*"),)
    )
    recheck(evidence, exact, "revision 2")
    recheck(evidence, pattern, "revision 2")
    other = TrustPolicy(mode=Mode.REQUIRED, identities=(Identity("https://accounts.google.com", subject=SUBJECT),))
    with pytest.raises(SignatureUntrusted, match="no longer trusts"):
        recheck(evidence, other, "revision 2")


def test_a_subject_regex_must_match_whole_and_never_hangs() -> None:
    identity = Identity(ISSUER, subject_regex=r"https://github\.com/shop/web/.*")
    assert identity.matches(ISSUER, SUBJECT)
    assert not identity.matches(ISSUER, "x" + SUBJECT)
    catastrophic = Identity(ISSUER, subject_regex=r"(x+x+)+y")
    assert not catastrophic.matches(ISSUER, "x" * 5000)  # stopped by the timeout, not minutes of backtracking


def test_identity_needs_one_subject_form_and_a_valid_pattern() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        Identity(ISSUER)
    with pytest.raises(ValueError, match="not a regular expression"):
        Identity(ISSUER, subject_regex="(")


@pytest.mark.parametrize(
    ("requested", "floor", "effective"),
    [
        (Mode.NONE, Mode.REQUIRED, Mode.REQUIRED),
        (Mode.IF_PRESENT, Mode.REQUIRED, Mode.REQUIRED),
        (Mode.REQUIRED, Mode.IF_PRESENT, Mode.REQUIRED),
        (Mode.NONE, Mode.IF_PRESENT, Mode.IF_PRESENT),
        (Mode.IF_PRESENT, Mode.NONE, Mode.IF_PRESENT),
    ],
)
def test_a_tenant_cannot_lower_the_floor(requested: Mode, floor: Mode, effective: Mode) -> None:
    assert effective_mode(requested, floor) is effective


def test_evidence_stays_bounded_a_longer_subject_is_not_trusted() -> None:
    from apprelease.trust.policy import MAX_EVIDENCE, MAX_IDENTITY

    identity = Identity(ISSUER, subject_regex=r"https://github\.com/shop/.*")
    long_subject = "https://github.com/shop/" + "x" * MAX_IDENTITY
    assert not identity.matches(ISSUER, long_subject)
    assert len(keyless_evidence("i" * MAX_IDENTITY, "s" * MAX_IDENTITY)) == MAX_EVIDENCE
    with pytest.raises(ValueError, match="longer than"):
        Identity("i" * (MAX_IDENTITY + 1), subject="s")


@pytest.mark.parametrize(
    "pattern",
    [
        "(((a{100}){100}){100}){100}",  # `regex` expanded this at compile time: GiBs, holding the GIL
        "((a{100}){100}){100}",  # 287 MiB under `regex`: over the chart's memory limit
        "(a{1000}){1000}",
        "x{1001}",
    ],
)
def test_a_subject_regex_whose_program_would_be_huge_is_refused_at_once(pattern: str) -> None:
    with pytest.raises(ValueError, match="not a regular expression RE2 can use"):
        Identity(ISSUER, subject_regex=pattern)


def test_a_subject_regex_matches_in_linear_time_where_backtracking_would_not() -> None:
    # (a+)+$ against a long run of a's that fails at the end: exponential for a backtracking engine.
    identity = Identity(ISSUER, subject_regex="(a+)+b")
    assert not identity.matches(ISSUER, "a" * 200)
    assert identity.matches(ISSUER, "a" * 200 + "b")


def test_provenance_evidence_is_rechecked_only_when_provenance_is_required() -> None:
    old, new = new_key(), new_key()
    required = TrustPolicy(mode=Mode.REQUIRED, keys=(trusted(new),), provenance_required=True)
    recheck_provenance(None, None, "v1", TrustPolicy(mode=Mode.REQUIRED, keys=(trusted(new),)), "revision 3")
    recheck_provenance(trusted(new).fingerprint, "v1", "v1", required, "revision 3")
    with pytest.raises(SignatureUntrusted, match="revision 3 records no verified provenance attestation"):
        recheck_provenance(None, None, "v1", required, "revision 3")
    with pytest.raises(SignatureUntrusted, match="attestation was signed by 'SHA256:.*no longer trusts"):
        recheck_provenance(trusted(old).fingerprint, "v1", "v1", required, "revision 3")
    with pytest.raises(SignatureUntrusted, match="names tag 'v0', not 'v1'"):
        recheck_provenance(trusted(new).fingerprint, "v0", "v1", required, "revision 3")
    keyless = TrustPolicy(identities=(Identity(ISSUER, subject=SUBJECT),), provenance_required=True)
    recheck_provenance(keyless_evidence(ISSUER, SUBJECT), "v1", "v1", keyless, "revision 3")
    with pytest.raises(SignatureUntrusted, match="no longer trusts"):
        recheck_provenance(keyless_evidence(ISSUER, SUBJECT + "x"), "v1", "v1", keyless, "revision 3")
