// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC1271} from "@openzeppelin/contracts/interfaces/IERC1271.sol";

/// @title UniversalSigValidator
/// @notice ERC-6492 universal signature verification in one deployless `eth_call`: send, with no `to`,
/// `data = creationBytecode ++ abi.encode(address signer, bytes32 hash, bytes signature)`. The call returns one
/// byte, 0x01 when the signature is valid and 0x00 when it is not, or reverts with one of the errors below.
/// Nothing is ever deployed: the contract exists only while its constructor runs, and so does any wallet the
/// constructor deploys for a counterfactual signature.
/// @dev Verification order as ERC-6492 "Verifier side" requires:
///  1. signature ends in the 32-byte magic suffix: decode (factory, factoryCalldata, innerSignature); if the
///     signer has no code, call the factory to deploy it; then ERC-1271 with the inner signature. If the signer
///     already had code and that check fails, treat (factory, factoryCalldata) as a "prepare" call, run it and
///     check once more.
///  2. signer has code: ERC-1271.
///  3. otherwise: ecrecover of a 65-byte r,s,v signature.
/// An ERC-1271 answer counts as valid only when the first returned word is exactly the ABI encoding of
/// 0x1626ba7e; a short or dirty answer is "invalid", a revert (including running out of gas) is
/// `UniversalSigValidatorERC1271Revert`.
contract UniversalSigValidator {
    /// @notice ERC-6492 wrapper suffix.
    bytes32 private constant _ERC6492_SUFFIX = 0x6492649264926492649264926492649264926492649264926492649264926492;
    /// @notice ERC-1271 "valid" value, bytes4(keccak256("isValidSignature(bytes32,bytes)")).
    bytes4 private constant _ERC1271_MAGIC = 0x1626ba7e;

    /// @notice The factory (or prepare) call of a wrapped signature reverted; carries its revert data.
    error UniversalSigValidatorCallFailed(bytes reason);
    /// @notice The factory call succeeded but left no code at the signer's address.
    error UniversalSigValidatorDeploySilentlyFailed();
    /// @notice The wallet's isValidSignature reverted (or ran out of gas); carries its revert data.
    error UniversalSigValidatorERC1271Revert(bytes reason);
    /// @notice An EOA signature must be 65 bytes (r, s, v).
    error UniversalSigValidatorInvalidSignatureLength(uint256 length);
    /// @notice An EOA signature's v must be 27 or 28.
    error UniversalSigValidatorInvalidSignatureV(uint8 v);

    /// @notice Verify `signature` by `signer` over `hash` and return the answer as the one-byte "runtime code".
    /// @param signer The account that claims to have signed (EOA, deployed or counterfactual wallet).
    /// @param hash The digest that was signed (e.g. the EIP-191 hash of a SIWE message).
    /// @param signature A 65-byte EOA signature, an ERC-1271 signature or an ERC-6492 wrapped one.
    constructor(address signer, bytes32 hash, bytes memory signature) {
        bool valid = _verify(signer, hash, signature);
        assembly ("memory-safe") {
            mstore(0, valid)
            return(31, 1)
        }
    }

    function _verify(address signer, bytes32 hash, bytes memory signature) private returns (bool) {
        if (_isWrapped(signature)) return _verifyWrapped(signer, hash, signature);
        if (signer.code.length > 0) {
            (bool ok, bool valid, bytes memory err) = _erc1271(signer, hash, signature);
            if (!ok) revert UniversalSigValidatorERC1271Revert(err);
            return valid;
        }
        return _ecrecover(signer, hash, signature);
    }

    function _verifyWrapped(address signer, bytes32 hash, bytes memory signature) private returns (bool) {
        (address target, bytes memory data, bytes memory inner) = abi.decode(_unwrap(signature), (address, bytes, bytes));
        if (signer.code.length > 0) {
            // Already deployed: the live wallet decides (it may have rotated keys since signing) ...
            (bool firstOk, bool firstValid,) = _erc1271(signer, hash, inner);
            if (firstOk && firstValid) return true;
            // ... and if it says no, the wrapper may be a "prepare" call that makes it ready to verify.
            (bool prepared, bytes memory prepareErr) = target.call(data);
            (bool ok, bool valid, bytes memory err) = _erc1271(signer, hash, inner);
            if (ok && valid) return true;
            if (!prepared) revert UniversalSigValidatorCallFailed(prepareErr);
            if (!ok) revert UniversalSigValidatorERC1271Revert(err);
            return false;
        }
        (bool deployed, bytes memory deployErr) = target.call(data);
        if (!deployed) revert UniversalSigValidatorCallFailed(deployErr);
        if (signer.code.length == 0) revert UniversalSigValidatorDeploySilentlyFailed();
        (bool callOk, bool isValid, bytes memory callErr) = _erc1271(signer, hash, inner);
        if (!callOk) revert UniversalSigValidatorERC1271Revert(callErr);
        return isValid;
    }

    /// @dev STATICCALL isValidSignature and judge the raw answer, so a malformed answer cannot make the
    /// validator itself revert during ABI decoding.
    function _erc1271(address wallet, bytes32 hash, bytes memory signature)
        private
        view
        returns (bool ok, bool valid, bytes memory ret)
    {
        (ok, ret) = wallet.staticcall(abi.encodeCall(IERC1271.isValidSignature, (hash, signature)));
        valid = ok && ret.length >= 32 && bytes32(ret) == bytes32(_ERC1271_MAGIC);
    }

    function _ecrecover(address signer, bytes32 hash, bytes memory signature) private pure returns (bool) {
        if (signature.length != 65) revert UniversalSigValidatorInvalidSignatureLength(signature.length);
        bytes32 r;
        bytes32 s;
        uint8 v;
        assembly ("memory-safe") {
            r := mload(add(signature, 0x20))
            s := mload(add(signature, 0x40))
            v := byte(0, mload(add(signature, 0x60)))
        }
        if (v != 27 && v != 28) revert UniversalSigValidatorInvalidSignatureV(v);
        address recovered = ecrecover(hash, v, r, s);
        // ecrecover answers address(0) for an unrecoverable signature; that must never match.
        return recovered != address(0) && recovered == signer;
    }

    function _isWrapped(bytes memory signature) private pure returns (bool wrapped) {
        if (signature.length < 32) return false;
        bytes32 tail;
        assembly ("memory-safe") {
            tail := mload(add(signature, mload(signature)))
        }
        return tail == _ERC6492_SUFFIX;
    }

    /// @dev The signature without its 32-byte suffix (a copy; the caller's bytes stay intact).
    function _unwrap(bytes memory signature) private pure returns (bytes memory body) {
        uint256 length = signature.length - 32;
        body = new bytes(length);
        assembly ("memory-safe") {
            mcopy(add(body, 0x20), add(signature, 0x20), length)
        }
    }
}
