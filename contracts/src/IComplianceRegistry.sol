// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title IComplianceRegistry
/// @notice Per-wallet compliance attestations for a derivatives venue, holding no personal data: codes, flags,
/// timestamps and hashes that point to the KYC files kept off-chain. Revocation keeps the record and stamps it;
/// the full history lives in the events. ERC-3643 identity-registry tooling can read `isVerified`,
/// `investorCountry` and `contains`.
/// @dev Encodings (investor class, KYC level, AML risk, flag bits) are fixed in `ComplianceRegistry` and
/// documented in contracts/README.md.
interface IComplianceRegistry {
    /// @notice What an attester writes for one wallet.
    struct RecordInput {
        uint16 residence; // ISO 3166-1 numeric country code, 1..999
        uint8 investorClass; // 1 retail, 2 professional, 3 eligible counterparty
        uint8 kycLevel; // 1 simplified, 2 standard, 3 enhanced due diligence
        uint8 amlRisk; // 1 low, 2 medium, 3 high
        uint32 flags; // bitfield, see ComplianceRegistry.FLAG_*
        uint64 validUntil; // unix seconds; the record is valid while block.timestamp < validUntil
        bytes32 subjectId; // opaque id linking the wallets of one person (never a raw personal identifier)
        bytes32 evidenceRef; // hash pointing to the off-chain KYC evidence
    }

    /// @notice The stored record; this field order packs into 5 storage slots.
    struct Record {
        uint16 residence;
        uint8 investorClass;
        uint8 kycLevel;
        uint8 amlRisk;
        uint32 flags;
        uint64 validUntil;
        uint64 verifiedAt; // block time of the last attestation; 0 means "no record"
        address attester; // who wrote the last attestation
        uint64 revokedAt; // 0 while not revoked
        bytes32 subjectId;
        bytes32 evidenceRef;
        bytes32 revocationReason; // set with revokedAt, cleared by a new attestation
    }

    /// @notice What a caller of `isEligible` demands on top of an active, unfrozen record.
    struct Requirements {
        uint32 requiredFlags; // every one of these bits must be set
        uint32 forbiddenFlags; // none of these bits may be set
        uint8 minInvestorClass; // 0 accepts any class
        uint8 minKycLevel; // 0 accepts any level
        uint8 maxAmlRisk; // records above this risk are not eligible
    }

    /// @notice An attester wrote `record` for `account`; `revision` is the registry counter after the write.
    event RecordSet(
        address indexed account, bytes32 indexed subjectId, address indexed attester, Record record, uint256 revision
    );
    /// @notice `account`'s record was revoked by `revoker`.
    event RecordRevoked(address indexed account, address indexed revoker, bytes32 reason, uint256 revision);
    /// @notice `account` was frozen: the FROZEN flag is set and survives re-attestation until `unfreeze`.
    event RecordFrozen(address indexed account, address indexed by, bytes32 reason, uint256 revision);
    /// @notice `account` was unfrozen.
    event RecordUnfrozen(address indexed account, address indexed by, uint256 revision);

    /// @notice The zero address cannot hold a record, nor administer the registry.
    error ComplianceRegistryZeroAddress();
    /// @notice A batch must hold 1..max entries.
    error ComplianceRegistryInvalidBatchLength(uint256 length, uint256 max);
    /// @notice Parallel batch arrays differ in length.
    error ComplianceRegistryLengthMismatch(uint256 accounts, uint256 inputs);
    /// @notice Residence is not an ISO 3166-1 numeric code (1..999).
    error ComplianceRegistryInvalidResidence(uint16 residence);
    /// @notice Investor class is not 1..3.
    error ComplianceRegistryInvalidInvestorClass(uint8 investorClass);
    /// @notice KYC level is not 1..3.
    error ComplianceRegistryInvalidKycLevel(uint8 kycLevel);
    /// @notice AML risk is not 1..3.
    error ComplianceRegistryInvalidAmlRisk(uint8 amlRisk);
    /// @notice Expiry is not in (now, now + MAX_VALIDITY].
    error ComplianceRegistryInvalidExpiry(uint64 validUntil, uint256 maxValidUntil);
    /// @notice subjectId must be set so the wallets of one person can be linked.
    error ComplianceRegistryZeroSubjectId();
    /// @notice evidenceRef must point to the off-chain evidence.
    error ComplianceRegistryZeroEvidenceRef();
    /// @notice A revocation or freeze must carry a reason.
    error ComplianceRegistryZeroReason();
    /// @notice `account` has no record.
    error ComplianceRegistryNoRecord(address account);
    /// @notice `account`'s record is already revoked.
    error ComplianceRegistryAlreadyRevoked(address account);
    /// @notice `account` is already frozen.
    error ComplianceRegistryAlreadyFrozen(address account);
    /// @notice `account` is not frozen.
    error ComplianceRegistryNotFrozen(address account);

    /// @notice Write (or overwrite) the record of `account`. A new attestation clears a revocation but keeps the
    /// FROZEN flag if it is set.
    /// @dev ATTESTER_ROLE, not paused. Emits RecordSet.
    /// @param account The wallet the record is about.
    /// @param input The attested values; verifiedAt and attester are taken from the block and the caller.
    function setRecord(address account, RecordInput calldata input) external;

    /// @notice `setRecord` for 1..MAX_BATCH wallets in one transaction; all or nothing.
    /// @dev ATTESTER_ROLE, not paused. Emits one RecordSet per account.
    /// @param accounts The wallets, in the order of `inputs`.
    /// @param inputs One input per wallet.
    function setRecords(address[] calldata accounts, RecordInput[] calldata inputs) external;

    /// @notice Revoke the record of `account`: the record is kept and stamped with the time and `reason`.
    /// @dev REVOKER_ROLE; allowed while paused (an emergency measure only ever restricts). Emits RecordRevoked.
    /// @param account The wallet whose record is revoked.
    /// @param reason A non-zero reason code or hash of the case file.
    function revoke(address account, bytes32 reason) external;

    /// @notice `revoke` for 1..MAX_BATCH wallets with one reason; all or nothing.
    /// @dev REVOKER_ROLE; allowed while paused. Emits one RecordRevoked per account.
    /// @param accounts The wallets whose records are revoked.
    /// @param reason A non-zero reason code or hash of the case file.
    function revokeBatch(address[] calldata accounts, bytes32 reason) external;

    /// @notice Set the FROZEN flag of `account`, which makes it neither verified nor eligible.
    /// @dev REVOKER_ROLE; allowed while paused. Emits RecordFrozen.
    /// @param account The wallet to freeze; it must have a record.
    /// @param reason A non-zero reason code or hash of the case file.
    function freeze(address account, bytes32 reason) external;

    /// @notice Clear the FROZEN flag of `account`.
    /// @dev ATTESTER_ROLE, not paused. Emits RecordUnfrozen.
    /// @param account The wallet to unfreeze.
    function unfreeze(address account) external;

    /// @notice The record of `account`; all zero when it has none (verifiedAt == 0).
    /// @param account The wallet to look up.
    /// @return The stored record.
    function getRecord(address account) external view returns (Record memory);

    /// @notice The records of several wallets, in the order asked.
    /// @param accounts The wallets to look up.
    /// @return records One record per account, zero for wallets without one.
    function getRecords(address[] calldata accounts) external view returns (Record[] memory records);

    /// @notice Whether `account` is verified and its record meets `req`.
    /// @param account The wallet to check.
    /// @param req Required and forbidden flags, minimum class and KYC level, maximum AML risk.
    /// @return True when isVerified(account) and every requirement holds.
    function isEligible(address account, Requirements calldata req) external view returns (bool);

    /// @notice ERC-3643 IIdentityRegistry: whether `account` has a record that is not revoked, not expired and
    /// not frozen.
    /// @param account The wallet to check.
    /// @return True when the record is active.
    function isVerified(address account) external view returns (bool);

    /// @notice ERC-3643 IIdentityRegistry: the ISO 3166-1 numeric residence of `account` (0 when unknown).
    /// @param account The wallet to look up.
    /// @return The country code stored in the record, revoked or not.
    function investorCountry(address account) external view returns (uint16);

    /// @notice ERC-3643 IIdentityRegistry: whether `account` has a record at all (revoked or not).
    /// @param account The wallet to look up.
    /// @return True when a record was ever written for `account`.
    function contains(address account) external view returns (bool);

    /// @notice A counter bumped by every record write (set, revoke, freeze, unfreeze; once per account in a
    /// batch). Readers compare it to see cheaply whether anything changed.
    /// @return The number of record writes so far.
    function revision() external view returns (uint256);
}
