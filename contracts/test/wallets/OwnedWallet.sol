// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC1271} from "@openzeppelin/contracts/interfaces/IERC1271.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";

/// @title OwnedWallet
/// @notice Test fixture: the smallest ERC-1271 wallet. One EOA owns it; a signature is valid when the owner
/// signed the given hash itself (65-byte r,s,v, low s).
contract OwnedWallet is IERC1271 {
    bytes4 private constant _MAGIC = IERC1271.isValidSignature.selector; // 0x1626ba7e
    bytes4 private constant _INVALID = 0xffffffff;

    /// @notice The EOA whose signatures this wallet accepts.
    address public owner;

    /// @notice The owner was replaced (key rotation).
    event OwnedWalletOwnerChanged(address indexed previousOwner, address indexed newOwner);

    /// @notice The owner must not be the zero address.
    error OwnedWalletZeroOwner();
    /// @notice Only the owner may do this.
    error OwnedWalletUnauthorized(address caller);

    /// @param initialOwner The EOA that signs for this wallet.
    constructor(address initialOwner) {
        if (initialOwner == address(0)) revert OwnedWalletZeroOwner();
        owner = initialOwner;
        emit OwnedWalletOwnerChanged(address(0), initialOwner);
    }

    /// @notice Rotate the signing key.
    /// @param newOwner The EOA that signs from now on.
    function setOwner(address newOwner) external {
        if (msg.sender != owner) revert OwnedWalletUnauthorized(msg.sender);
        if (newOwner == address(0)) revert OwnedWalletZeroOwner();
        address previous = owner;
        owner = newOwner;
        emit OwnedWalletOwnerChanged(previous, newOwner);
    }

    /// @notice ERC-1271: 0x1626ba7e when the owner signed `hash`, 0xffffffff otherwise.
    /// @param hash The digest that was signed.
    /// @param signature The owner's 65-byte signature over `hash`.
    /// @return magicValue 0x1626ba7e or 0xffffffff.
    function isValidSignature(bytes32 hash, bytes calldata signature) external view returns (bytes4 magicValue) {
        (address recovered, ECDSA.RecoverError err,) = ECDSA.tryRecoverCalldata(hash, signature);
        return err == ECDSA.RecoverError.NoError && recovered == owner ? _MAGIC : _INVALID;
    }
}
