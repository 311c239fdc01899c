// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title StandinIdentityRegistry
/// @notice Test stand-in for an ERC-3643 (T-REX) identity registry: `isVerified`, `investorCountry`, `contains`,
/// `identity`, and the agent writes `registerIdentity` / `deleteIdentity`. Whether the identity holds the claims
/// the token requires (checked against ONCHAINID claim issuers in ERC-3643) is a flag the agent sets here.
/// @dev Written for Portcullis's tests from the public ERC-3643 IIdentityRegistry interface.
contract StandinIdentityRegistry {
    /// @notice The only account that may write.
    address public immutable agent;

    mapping(address user => address) private _identities;
    mapping(address user => uint16) private _countries;
    mapping(address user => bool) private _claimsValid;

    /// @notice ERC-3643: an identity was registered for `investorAddress`.
    event IdentityRegistered(address indexed investorAddress, address indexed identity);
    /// @notice ERC-3643: the identity of `investorAddress` was removed.
    event IdentityRemoved(address indexed investorAddress, address indexed identity);
    /// @notice Stand-in only: the claim check of `investorAddress` now answers `valid`.
    event StandinClaimsSet(address indexed investorAddress, bool valid);

    /// @notice Only the agent may write.
    error StandinIdentityRegistryUnauthorized(address caller);
    /// @notice `user` has no identity.
    error StandinIdentityRegistryNotRegistered(address user);

    /// @param agent_ The account that registers identities.
    constructor(address agent_) {
        agent = agent_;
    }

    /// @notice Register `identity` for `user` with residence `country` (ISO 3166-1 numeric); claims start valid.
    /// @param user The wallet.
    /// @param identity_ The wallet's ONCHAINID contract (any non-zero address here).
    /// @param country ISO 3166-1 numeric country code.
    function registerIdentity(address user, address identity_, uint16 country) external {
        _onlyAgent();
        _identities[user] = identity_;
        _countries[user] = country;
        _claimsValid[user] = true;
        emit IdentityRegistered(user, identity_);
    }

    /// @notice Remove the identity of `user`.
    /// @param user The wallet.
    function deleteIdentity(address user) external {
        _onlyAgent();
        address removed = _identities[user];
        if (removed == address(0)) revert StandinIdentityRegistryNotRegistered(user);
        delete _identities[user];
        delete _countries[user];
        delete _claimsValid[user];
        emit IdentityRemoved(user, removed);
    }

    /// @notice Stand-in for the claim check: whether `user`'s identity holds the required, valid claims.
    /// @param user The wallet.
    /// @param valid The answer `isVerified` gives from now on.
    function setClaimsValid(address user, bool valid) external {
        _onlyAgent();
        if (_identities[user] == address(0)) revert StandinIdentityRegistryNotRegistered(user);
        _claimsValid[user] = valid;
        emit StandinClaimsSet(user, valid);
    }

    /// @notice ERC-3643: whether `user` has an identity with the required claims.
    /// @param user The wallet.
    /// @return True when verified.
    function isVerified(address user) external view returns (bool) {
        return _identities[user] != address(0) && _claimsValid[user];
    }

    /// @notice ERC-3643: the ISO 3166-1 numeric country of `user` (0 when unknown).
    /// @param user The wallet.
    /// @return The country code.
    function investorCountry(address user) external view returns (uint16) {
        return _countries[user];
    }

    /// @notice ERC-3643: whether `user` has an identity.
    /// @param user The wallet.
    /// @return True when registered.
    function contains(address user) external view returns (bool) {
        return _identities[user] != address(0);
    }

    /// @notice ERC-3643: the identity contract of `user` (zero when none).
    /// @param user The wallet.
    /// @return The identity address.
    function identity(address user) external view returns (address) {
        return _identities[user];
    }

    function _onlyAgent() private view {
        if (msg.sender != agent) revert StandinIdentityRegistryUnauthorized(msg.sender);
    }
}
