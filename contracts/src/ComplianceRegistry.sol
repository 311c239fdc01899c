// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";

import {IComplianceRegistry} from "./IComplianceRegistry.sol";

/// @title ComplianceRegistry
/// @notice Compliance attestations per wallet (see IComplianceRegistry). Attesters write records, revokers
/// revoke and freeze them in emergencies, pausers stop the writes that grant or restore eligibility.
/// @dev Pausing blocks setRecord, setRecords and unfreeze; revoke, revokeBatch and freeze stay available while
/// paused because they only ever take eligibility away, which is what an emergency needs.
contract ComplianceRegistry is IComplianceRegistry, AccessControl, Pausable {
    /// @notice May write records (setRecord, setRecords) and unfreeze.
    bytes32 public constant ATTESTER_ROLE = keccak256("ATTESTER_ROLE");
    /// @notice May revoke and freeze, also while paused; nothing else.
    bytes32 public constant REVOKER_ROLE = keccak256("REVOKER_ROLE");
    /// @notice May pause. Unpausing needs DEFAULT_ADMIN_ROLE.
    bytes32 public constant PAUSER_ROLE = keccak256("PAUSER_ROLE");

    /// @notice Largest batch accepted by setRecords and revokeBatch.
    uint256 public constant MAX_BATCH = 100;
    /// @notice Longest validity of one attestation: KYC must be refreshed at least every five years.
    uint256 public constant MAX_VALIDITY = 5 * 365 days;

    // Investor classes (MiFID II client categories), ordered by sophistication.
    /// @notice Investor class: retail client.
    uint8 public constant CLASS_RETAIL = 1;
    /// @notice Investor class: professional client.
    uint8 public constant CLASS_PROFESSIONAL = 2;
    /// @notice Investor class: eligible counterparty.
    uint8 public constant CLASS_ELIGIBLE_COUNTERPARTY = 3;

    /// @notice KYC level: simplified due diligence.
    uint8 public constant KYC_SIMPLIFIED = 1;
    /// @notice KYC level: standard customer due diligence.
    uint8 public constant KYC_STANDARD = 2;
    /// @notice KYC level: enhanced due diligence.
    uint8 public constant KYC_ENHANCED = 3;

    // AML risk ratings. A wallet that must not be served at all is revoked or frozen, not rated.
    /// @notice AML risk: low.
    uint8 public constant AML_LOW = 1;
    /// @notice AML risk: medium.
    uint8 public constant AML_MEDIUM = 2;
    /// @notice AML risk: high.
    uint8 public constant AML_HIGH = 3;

    // Flag bits. Bits 5..15 are reserved for the registry, bits 16..31 are free for a deployment's own use; the
    // registry stores all 32 bits and gives only FROZEN a meaning of its own.
    /// @notice Flag bit 0: US person (Regulation S).
    uint32 public constant FLAG_US_PERSON = 1 << 0;
    /// @notice Flag bit 1: passed the appropriateness assessment for derivatives (MiFID II art. 25(3)).
    uint32 public constant FLAG_APPROPRIATENESS_DERIVATIVES = 1 << 1;
    /// @notice Flag bit 2: accredited investor (SEC Rule 501(a)) or a local equivalent.
    uint32 public constant FLAG_ACCREDITED = 1 << 2;
    /// @notice Flag bit 3: frozen; neither verified nor eligible. Set by `freeze`, cleared only by `unfreeze`.
    uint32 public constant FLAG_FROZEN = 1 << 3;
    /// @notice Flag bit 4: politically exposed person.
    uint32 public constant FLAG_PEP = 1 << 4;

    uint16 private constant _MAX_ISO_3166_NUMERIC = 999;

    /// @inheritdoc IComplianceRegistry
    uint256 public revision;

    mapping(address account => Record) private _records;

    /// @notice Deploy with `admin` holding DEFAULT_ADMIN_ROLE; it grants the other roles.
    /// @param admin The administrator (a multisig in production).
    constructor(address admin) {
        if (admin == address(0)) revert ComplianceRegistryZeroAddress();
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
    }

    // ---------------------------------------------------------------- writes

    /// @inheritdoc IComplianceRegistry
    function setRecord(address account, RecordInput calldata input)
        external
        onlyRole(ATTESTER_ROLE)
        whenNotPaused
    {
        _setRecord(account, input);
    }

    /// @inheritdoc IComplianceRegistry
    function setRecords(address[] calldata accounts, RecordInput[] calldata inputs)
        external
        onlyRole(ATTESTER_ROLE)
        whenNotPaused
    {
        _checkBatchLength(accounts.length);
        if (accounts.length != inputs.length) {
            revert ComplianceRegistryLengthMismatch(accounts.length, inputs.length);
        }
        for (uint256 i = 0; i < accounts.length; ++i) {
            _setRecord(accounts[i], inputs[i]);
        }
    }

    /// @inheritdoc IComplianceRegistry
    function revoke(address account, bytes32 reason) external onlyRole(REVOKER_ROLE) {
        if (reason == bytes32(0)) revert ComplianceRegistryZeroReason();
        _revoke(account, reason);
    }

    /// @inheritdoc IComplianceRegistry
    function revokeBatch(address[] calldata accounts, bytes32 reason) external onlyRole(REVOKER_ROLE) {
        _checkBatchLength(accounts.length);
        if (reason == bytes32(0)) revert ComplianceRegistryZeroReason();
        for (uint256 i = 0; i < accounts.length; ++i) {
            _revoke(accounts[i], reason);
        }
    }

    /// @inheritdoc IComplianceRegistry
    function freeze(address account, bytes32 reason) external onlyRole(REVOKER_ROLE) {
        if (reason == bytes32(0)) revert ComplianceRegistryZeroReason();
        Record storage record = _records[account];
        if (record.verifiedAt == 0) revert ComplianceRegistryNoRecord(account);
        if (record.flags & FLAG_FROZEN != 0) revert ComplianceRegistryAlreadyFrozen(account);
        record.flags |= FLAG_FROZEN;
        emit RecordFrozen(account, _msgSender(), reason, ++revision);
    }

    /// @inheritdoc IComplianceRegistry
    function unfreeze(address account) external onlyRole(ATTESTER_ROLE) whenNotPaused {
        Record storage record = _records[account];
        if (record.flags & FLAG_FROZEN == 0) revert ComplianceRegistryNotFrozen(account);
        record.flags &= ~FLAG_FROZEN;
        emit RecordUnfrozen(account, _msgSender(), ++revision);
    }

    /// @notice Stop setRecord, setRecords and unfreeze (revocation and freezing stay available).
    /// @dev PAUSER_ROLE. Emits Paused.
    function pause() external onlyRole(PAUSER_ROLE) {
        _pause();
    }

    /// @notice Resume the writes stopped by `pause`.
    /// @dev DEFAULT_ADMIN_ROLE, so a leaked pauser key cannot undo an emergency stop. Emits Unpaused.
    function unpause() external onlyRole(DEFAULT_ADMIN_ROLE) {
        _unpause();
    }

    // ---------------------------------------------------------------- reads

    /// @inheritdoc IComplianceRegistry
    function getRecord(address account) external view returns (Record memory) {
        return _records[account];
    }

    /// @inheritdoc IComplianceRegistry
    function getRecords(address[] calldata accounts) external view returns (Record[] memory records) {
        records = new Record[](accounts.length);
        for (uint256 i = 0; i < accounts.length; ++i) {
            records[i] = _records[accounts[i]];
        }
    }

    /// @inheritdoc IComplianceRegistry
    function isEligible(address account, Requirements calldata req) external view returns (bool) {
        Record storage record = _records[account];
        if (!_isActive(record)) return false;
        uint32 flags = record.flags;
        return (flags & req.requiredFlags) == req.requiredFlags && (flags & req.forbiddenFlags) == 0
            && record.investorClass >= req.minInvestorClass && record.kycLevel >= req.minKycLevel
            && record.amlRisk <= req.maxAmlRisk;
    }

    /// @inheritdoc IComplianceRegistry
    function isVerified(address account) external view returns (bool) {
        return _isActive(_records[account]);
    }

    /// @inheritdoc IComplianceRegistry
    function investorCountry(address account) external view returns (uint16) {
        return _records[account].residence;
    }

    /// @inheritdoc IComplianceRegistry
    function contains(address account) external view returns (bool) {
        return _records[account].verifiedAt != 0;
    }

    /// @notice ERC-165: IComplianceRegistry and IAccessControl.
    /// @param interfaceId The ERC-165 interface id to test.
    /// @return True when supported.
    function supportsInterface(bytes4 interfaceId) public view override returns (bool) {
        return interfaceId == type(IComplianceRegistry).interfaceId || super.supportsInterface(interfaceId);
    }

    // ---------------------------------------------------------------- internals

    function _setRecord(address account, RecordInput calldata input) private {
        if (account == address(0)) revert ComplianceRegistryZeroAddress();
        _validate(input);
        // FROZEN is sticky: only `unfreeze` clears it, so a routine re-attestation cannot undo an emergency freeze.
        uint32 flags = input.flags | (_records[account].flags & FLAG_FROZEN);
        Record memory record = Record({
            residence: input.residence,
            investorClass: input.investorClass,
            kycLevel: input.kycLevel,
            amlRisk: input.amlRisk,
            flags: flags,
            validUntil: input.validUntil,
            verifiedAt: uint64(block.timestamp),
            attester: _msgSender(),
            revokedAt: 0,
            subjectId: input.subjectId,
            evidenceRef: input.evidenceRef,
            revocationReason: bytes32(0)
        });
        _records[account] = record;
        emit RecordSet(account, input.subjectId, _msgSender(), record, ++revision);
    }

    function _revoke(address account, bytes32 reason) private {
        Record storage record = _records[account];
        if (record.verifiedAt == 0) revert ComplianceRegistryNoRecord(account);
        if (record.revokedAt != 0) revert ComplianceRegistryAlreadyRevoked(account);
        record.revokedAt = uint64(block.timestamp);
        record.revocationReason = reason;
        emit RecordRevoked(account, _msgSender(), reason, ++revision);
    }

    function _validate(RecordInput calldata input) private view {
        if (input.residence == 0 || input.residence > _MAX_ISO_3166_NUMERIC) {
            revert ComplianceRegistryInvalidResidence(input.residence);
        }
        if (input.investorClass < CLASS_RETAIL || input.investorClass > CLASS_ELIGIBLE_COUNTERPARTY) {
            revert ComplianceRegistryInvalidInvestorClass(input.investorClass);
        }
        if (input.kycLevel < KYC_SIMPLIFIED || input.kycLevel > KYC_ENHANCED) {
            revert ComplianceRegistryInvalidKycLevel(input.kycLevel);
        }
        if (input.amlRisk < AML_LOW || input.amlRisk > AML_HIGH) {
            revert ComplianceRegistryInvalidAmlRisk(input.amlRisk);
        }
        uint256 maxValidUntil = block.timestamp + MAX_VALIDITY;
        if (input.validUntil <= block.timestamp || input.validUntil > maxValidUntil) {
            revert ComplianceRegistryInvalidExpiry(input.validUntil, maxValidUntil);
        }
        if (input.subjectId == bytes32(0)) revert ComplianceRegistryZeroSubjectId();
        if (input.evidenceRef == bytes32(0)) revert ComplianceRegistryZeroEvidenceRef();
    }

    function _checkBatchLength(uint256 length) private pure {
        if (length == 0 || length > MAX_BATCH) revert ComplianceRegistryInvalidBatchLength(length, MAX_BATCH);
    }

    function _isActive(Record storage record) private view returns (bool) {
        return record.verifiedAt != 0 && record.revokedAt == 0 && block.timestamp < record.validUntil
            && record.flags & FLAG_FROZEN == 0;
    }
}
