// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC1271} from "@openzeppelin/contracts/interfaces/IERC1271.sol";

/// @title RevertingWallet
/// @notice Test fixture (malicious): isValidSignature always reverts with a custom error.
contract RevertingWallet is IERC1271 {
    /// @notice Raised by every isValidSignature call.
    error RevertingWalletRefused(bytes32 hash);

    /// @notice ERC-1271 entry point that always reverts.
    /// @param hash The digest; echoed in the revert.
    /// @return Never returned.
    function isValidSignature(bytes32 hash, bytes calldata) external pure returns (bytes4) {
        revert RevertingWalletRefused(hash);
    }
}
