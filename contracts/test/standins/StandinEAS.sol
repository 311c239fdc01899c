// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title StandinEAS
/// @notice Test stand-in for the Ethereum Attestation Service: `attest`, `revoke` and `getAttestation` with EAS's
/// request and attestation structs, and EAS's `Attested` / `Revoked` events, whose indexed `recipient` and
/// `schema` topics are how a reader finds a wallet's attestation UIDs (EAS keeps no index by recipient).
/// @dev Written for Portcullis's tests from the public IEAS interface; no schema registry, resolvers, delegation
/// or fees. UIDs are derived differently from EAS (they only need to be unique).
contract StandinEAS {
    /// @notice What an attester asks for (EAS `AttestationRequestData`).
    struct AttestationRequestData {
        address recipient;
        uint64 expirationTime; // 0: never expires
        bool revocable;
        bytes32 refUID;
        bytes data;
        uint256 value; // must be 0 here
    }

    /// @notice EAS `AttestationRequest`.
    struct AttestationRequest {
        bytes32 schema;
        AttestationRequestData data;
    }

    /// @notice EAS `RevocationRequestData`.
    struct RevocationRequestData {
        bytes32 uid;
        uint256 value; // must be 0 here
    }

    /// @notice EAS `RevocationRequest`.
    struct RevocationRequest {
        bytes32 schema;
        RevocationRequestData data;
    }

    /// @notice EAS `Attestation`, field for field.
    struct Attestation {
        bytes32 uid;
        bytes32 schema;
        uint64 time;
        uint64 expirationTime;
        uint64 revocationTime;
        bytes32 refUID;
        address recipient;
        address attester;
        bool revocable;
        bytes data;
    }

    mapping(bytes32 uid => Attestation) private _attestations;
    uint256 private _nonce;

    /// @notice An attestation was made.
    event Attested(address indexed recipient, address indexed attester, bytes32 uid, bytes32 indexed schema);
    /// @notice An attestation was revoked.
    event Revoked(address indexed recipient, address indexed attester, bytes32 uid, bytes32 indexed schema);

    /// @notice The expiration time is set and not in the future.
    error StandinEASInvalidExpirationTime();
    /// @notice No attestation has this UID.
    error StandinEASNotFound();
    /// @notice The attestation belongs to another schema.
    error StandinEASInvalidSchema();
    /// @notice Only the attester may revoke.
    error StandinEASAccessDenied();
    /// @notice The attestation was made irrevocable.
    error StandinEASIrrevocable();
    /// @notice The attestation is already revoked.
    error StandinEASAlreadyRevoked();
    /// @notice The stand-in takes no ETH.
    error StandinEASNotPayable();

    /// @notice Attest to `request.data.recipient` under `request.schema`.
    /// @param request The schema and the attestation data.
    /// @return uid The new attestation's UID.
    function attest(AttestationRequest calldata request) external returns (bytes32 uid) {
        AttestationRequestData calldata d = request.data;
        if (d.value != 0) revert StandinEASNotPayable();
        if (d.expirationTime != 0 && d.expirationTime <= block.timestamp) revert StandinEASInvalidExpirationTime();
        uid = keccak256(abi.encode(request.schema, d.recipient, msg.sender, block.timestamp, d.refUID, ++_nonce));
        _attestations[uid] = Attestation({
            uid: uid,
            schema: request.schema,
            time: uint64(block.timestamp),
            expirationTime: d.expirationTime,
            revocationTime: 0,
            refUID: d.refUID,
            recipient: d.recipient,
            attester: msg.sender,
            revocable: d.revocable,
            data: d.data
        });
        emit Attested(d.recipient, msg.sender, uid, request.schema);
    }

    /// @notice Revoke one of the caller's attestations.
    /// @param request The schema and the UID to revoke.
    function revoke(RevocationRequest calldata request) external {
        if (request.data.value != 0) revert StandinEASNotPayable();
        Attestation storage a = _attestations[request.data.uid];
        if (a.uid == bytes32(0)) revert StandinEASNotFound();
        if (a.schema != request.schema) revert StandinEASInvalidSchema();
        if (a.attester != msg.sender) revert StandinEASAccessDenied();
        if (!a.revocable) revert StandinEASIrrevocable();
        if (a.revocationTime != 0) revert StandinEASAlreadyRevoked();
        a.revocationTime = uint64(block.timestamp);
        emit Revoked(a.recipient, msg.sender, a.uid, a.schema);
    }

    /// @notice The attestation `uid`; all zero when there is none.
    /// @param uid The attestation UID.
    /// @return The attestation.
    function getAttestation(bytes32 uid) external view returns (Attestation memory) {
        return _attestations[uid];
    }

    /// @notice Whether an attestation `uid` exists (revoked or not, as in EAS).
    /// @param uid The attestation UID.
    /// @return True when it exists.
    function isAttestationValid(bytes32 uid) external view returns (bool) {
        return _attestations[uid].uid != bytes32(0);
    }
}
