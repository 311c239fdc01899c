// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC1271} from "@openzeppelin/contracts/interfaces/IERC1271.sol";

/// @title WrongMagicWallet
/// @notice Test fixture (malicious): isValidSignature answers a fixed 32-byte word chosen at deployment,
/// whatever the signature. Use 0x1626ba7f... for a near-miss, or 0x1626ba7e followed by non-zero bytes for an
/// answer whose first four bytes are right but which is not a clean ABI-encoded bytes4.
contract WrongMagicWallet is IERC1271 {
    /// @notice The raw word every isValidSignature call returns.
    bytes32 public immutable answer;

    /// @param answer_ The raw 32-byte return word.
    constructor(bytes32 answer_) {
        answer = answer_;
    }

    /// @notice ERC-1271 entry point returning `answer` verbatim (not ABI-cleaned).
    /// @return Not used: the word is returned from assembly.
    function isValidSignature(bytes32, bytes calldata) external view returns (bytes4) {
        bytes32 word = answer;
        assembly ("memory-safe") {
            mstore(0, word)
            return(0, 32)
        }
    }
}
