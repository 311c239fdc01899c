// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title StandinMulticall
/// @notice Test stand-in for the read path of Multicall3: `aggregate3` runs every call and returns each result, so
/// a reader can batch all the calls of one decision into one `eth_call` pinned to one block.
/// @dev Written for Portcullis's tests, ABI-compatible with Multicall3's `aggregate3((address,bool,bytes)[])`
/// (same selector, same structs). Calls are made with STATICCALL: a read batch must never change state.
contract StandinMulticall {
    /// @notice One call: the contract, whether its failure may be returned instead of reverting, the calldata.
    struct Call3 {
        address target;
        bool allowFailure;
        bytes callData;
    }

    /// @notice One answer: whether the call succeeded, and its return (or revert) data.
    struct Result {
        bool success;
        bytes returnData;
    }

    /// @notice Call `index` failed and did not allow failure.
    error StandinMulticallCallFailed(uint256 index);

    /// @notice Run `calls` in order with STATICCALL and return every result.
    /// @param calls The calls; a failing call reverts the batch unless its `allowFailure` is set.
    /// @return results One result per call, in order.
    function aggregate3(Call3[] calldata calls) external view returns (Result[] memory results) {
        results = new Result[](calls.length);
        for (uint256 i = 0; i < calls.length; ++i) {
            (bool success, bytes memory returnData) = calls[i].target.staticcall(calls[i].callData);
            if (!success && !calls[i].allowFailure) revert StandinMulticallCallFailed(i);
            results[i] = Result({success: success, returnData: returnData});
        }
    }
}
