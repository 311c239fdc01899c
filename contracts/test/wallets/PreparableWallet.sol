// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC1271} from "@openzeppelin/contracts/interfaces/IERC1271.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";

/// @title PreparableWallet
/// @notice Test fixture: a deployed wallet that is "not ready to verify" (ERC-6492 signer side, third case)
/// until someone calls `prepare()`, standing in for a wallet that needs a `migrate` or `update` first. Before
/// that, isValidSignature answers 0xffffffff for every signature.
contract PreparableWallet is IERC1271 {
    bytes4 private constant _MAGIC = IERC1271.isValidSignature.selector;
    bytes4 private constant _INVALID = 0xffffffff;

    /// @notice The EOA whose signatures this wallet accepts once prepared.
    address public immutable owner;
    /// @notice Whether `prepare` has run.
    bool public prepared;

    /// @notice The wallet became ready to verify signatures.
    event PreparableWalletPrepared(address indexed by);

    /// @param owner_ The EOA that signs for this wallet.
    constructor(address owner_) {
        owner = owner_;
    }

    /// @notice Make the wallet ready to verify (idempotent; anyone may call it).
    function prepare() external {
        if (prepared) return;
        prepared = true;
        emit PreparableWalletPrepared(msg.sender);
    }

    /// @notice ERC-1271: 0x1626ba7e when prepared and the owner signed `hash`, 0xffffffff otherwise.
    /// @param hash The digest that was signed.
    /// @param signature The owner's 65-byte signature over `hash`.
    /// @return magicValue 0x1626ba7e or 0xffffffff.
    function isValidSignature(bytes32 hash, bytes calldata signature) external view returns (bytes4 magicValue) {
        if (!prepared) return _INVALID;
        (address recovered, ECDSA.RecoverError err,) = ECDSA.tryRecoverCalldata(hash, signature);
        return err == ECDSA.RecoverError.NoError && recovered == owner ? _MAGIC : _INVALID;
    }
}
