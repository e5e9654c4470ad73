// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

/// @title Ferry bridge: the EVM side of a lock/release bridge to the Ferry native ledger.
/// @notice Users `lock` the native coin or an allow-listed ERC-20; validators observe `Locked`
/// and mint on the ledger. A quorum of the CURRENT validator set signs EIP-712 `Release`
/// messages so anyone can `release` funds burned on the ledger, exactly once per burn id.
/// Governance (validator rotation, pause, token allow-list) is by quorum signatures as well.
/// @dev SECURITY: every state change that moves value is checks-effects-interactions and
/// `nonReentrant`; signatures are EIP-2 low-s with v in {27, 28}; signers must be strictly
/// ascending (so none is counted twice) and members of the current set only. Digests are
/// EIP-712 and must equal `validators/eip712.py` byte for byte.
contract Bridge {
    // ---------------------------------------------------------------- EIP-712 constants
    bytes32 private constant DOMAIN_TYPEHASH = keccak256(
        "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
    );
    bytes32 private constant NAME_HASH = keccak256("FerryBridge");
    bytes32 private constant VERSION_HASH = keccak256("1");
    bytes32 private constant RELEASE_TYPEHASH = keccak256(
        "Release(bytes32 burnId,address token,address recipient,uint256 amount,uint256 setNonce)"
    );
    bytes32 private constant UPDATE_SET_TYPEHASH =
        keccak256("UpdateValidatorSet(address[] validators,uint256 threshold,uint256 setNonce)");
    bytes32 private constant SET_PAUSED_TYPEHASH = keccak256("SetPaused(bool paused,uint256 opNonce)");
    bytes32 private constant SET_TOKEN_ALLOWED_TYPEHASH =
        keccak256("SetTokenAllowed(address token,bool allowed,uint256 opNonce)");

    /// @dev secp256k1 n / 2; signatures with a larger s are malleable copies (EIP-2).
    uint256 private constant HALF_N = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0;
    address private constant NATIVE = address(0);

    // ---------------------------------------------------------------- events
    event Locked(
        uint256 indexed nonce, address indexed token, address indexed sender, uint256 amount, bytes32 recipient
    );
    event Released(bytes32 indexed burnId, address indexed token, address indexed recipient, uint256 amount);
    event ValidatorSetUpdated(uint256 indexed setNonce, address[] validators, uint256 threshold);
    event PausedSet(bool paused, uint256 opNonce);
    event TokenAllowed(address indexed token, bool allowed, uint256 opNonce);

    // ---------------------------------------------------------------- errors
    error Reentrancy();
    error BridgePaused();
    error TokenNotAllowed(address token);
    error ZeroAmount();
    error ZeroRecipient();
    error ValueMismatch(uint256 value, uint256 amount);
    error NotAContract(address token);
    error TokenTransferFailed(address token);
    error NativeTransferFailed(address recipient);
    error AlreadyReleased(bytes32 burnId);
    error BadSignatureLength(uint256 index);
    error BadSignatureV(uint256 index);
    error HighS(uint256 index);
    error InvalidSignature(uint256 index);
    error SignersNotAscending(uint256 index);
    error NotValidator(address signer);
    error QuorumNotMet(uint256 signatures, uint256 threshold);
    error BadThreshold(uint256 threshold, uint256 size);
    error BadValidator(address validator);
    error StaleSetNonce(uint256 newSetNonce, uint256 currentSetNonce);

    // ---------------------------------------------------------------- state
    uint256 public lockNonce;
    uint256 public setNonce;
    uint256 public threshold;
    uint256 public opNonce;
    bool public paused;
    mapping(bytes32 => bool) public released;
    mapping(address => uint256) public totalLocked;
    mapping(address => uint256) public totalReleased;
    mapping(address => bool) public allowedTokens;

    address[] private _validators;
    /// @dev validator => the set nonce of the last set it was put in. A signer counts only if
    /// this equals `setNonce`, so members of older sets stop counting the moment a set rotates.
    mapping(address => uint256) private _memberOfSet;
    uint256 private _guard = 1;

    modifier nonReentrant() {
        if (_guard != 1) revert Reentrancy();
        _guard = 2;
        _;
        _guard = 1;
    }

    modifier whenNotPaused() {
        if (paused) revert BridgePaused();
        _;
    }

    /// @param initialValidators first validator set (set nonce 1): distinct, nonzero addresses.
    /// @param initialThreshold signatures required, 0 < initialThreshold <= set size.
    /// @param initialAllowedTokens tokens `lock` accepts; include address(0) for the native coin.
    constructor(address[] memory initialValidators, uint256 initialThreshold, address[] memory initialAllowedTokens) {
        _setValidators(initialValidators, initialThreshold, 1);
        for (uint256 i = 0; i < initialAllowedTokens.length; ++i) {
            allowedTokens[initialAllowedTokens[i]] = true;
            emit TokenAllowed(initialAllowedTokens[i], true, 0);
        }
    }

    // ---------------------------------------------------------------- user entry points

    /// @notice Lock `amount` of `token` (address(0) = native coin, sent as msg.value) for the
    /// 32-byte ledger account `recipient`. Emits `Locked` with the amount actually received.
    /// @return nonce the lock's nonce, strictly increasing from 1.
    function lock(address token, uint256 amount, bytes32 recipient)
        external
        payable
        nonReentrant
        whenNotPaused
        returns (uint256 nonce)
    {
        if (!allowedTokens[token]) revert TokenNotAllowed(token);
        if (recipient == bytes32(0)) revert ZeroRecipient();
        if (amount == 0) revert ZeroAmount();
        uint256 credited;
        if (token == NATIVE) {
            if (msg.value != amount) revert ValueMismatch(msg.value, amount);
            credited = amount;
        } else {
            if (msg.value != 0) revert ValueMismatch(msg.value, 0);
            // Interaction before effects is unavoidable here: the credited amount is the
            // balance delta (fee-on-transfer tokens). nonReentrant covers the window.
            uint256 before = _balanceOf(token);
            _safeCall(token, abi.encodeWithSelector(0x23b872dd, msg.sender, address(this), amount));
            credited = _balanceOf(token) - before;
            if (credited == 0) revert ZeroAmount();
        }
        nonce = ++lockNonce;
        totalLocked[token] += credited;
        emit Locked(nonce, token, msg.sender, credited, recipient);
    }

    /// @notice Pay `amount` of `token` to `recipient` for ledger burn `burnId`, authorised by a
    /// quorum of the current set over EIP-712 `Release(burnId,token,recipient,amount,setNonce)`.
    /// @param signatures 65-byte r||s||v signatures, ordered by strictly ascending signer.
    function release(bytes32 burnId, address token, address recipient, uint256 amount, bytes[] calldata signatures)
        external
        nonReentrant
        whenNotPaused
    {
        if (released[burnId]) revert AlreadyReleased(burnId);
        if (amount == 0) revert ZeroAmount();
        if (recipient == address(0)) revert ZeroRecipient();
        bytes32 structHash = keccak256(abi.encode(RELEASE_TYPEHASH, burnId, token, recipient, amount, setNonce));
        _requireQuorum(_hashTypedData(structHash), signatures);

        released[burnId] = true;
        totalReleased[token] += amount;

        if (token == NATIVE) {
            (bool ok,) = recipient.call{value: amount}("");
            if (!ok) revert NativeTransferFailed(recipient);
        } else {
            _safeCall(token, abi.encodeWithSelector(0xa9059cbb, recipient, amount));
        }
        emit Released(burnId, token, recipient, amount);
    }

    // ---------------------------------------------------------------- governance (quorum)

    /// @notice Replace the validator set. Signed by a quorum of the CURRENT set over EIP-712
    /// `UpdateValidatorSet(validators,threshold,setNonce)` with setNonce = `newSetNonce`.
    function updateValidatorSet(
        address[] calldata newValidators,
        uint256 newThreshold,
        uint256 newSetNonce,
        bytes[] calldata signatures
    ) external {
        if (newSetNonce <= setNonce) revert StaleSetNonce(newSetNonce, setNonce);
        bytes32 structHash = keccak256(
            abi.encode(UPDATE_SET_TYPEHASH, keccak256(abi.encodePacked(newValidators)), newThreshold, newSetNonce)
        );
        _requireQuorum(_hashTypedData(structHash), signatures);
        _setValidators(newValidators, newThreshold, newSetNonce);
    }

    /// @notice Pause or unpause `lock` and `release`. Signed over `SetPaused(paused,opNonce)`.
    function setPaused(bool newPaused, bytes[] calldata signatures) external {
        uint256 usedNonce = opNonce;
        _requireQuorum(_hashTypedData(keccak256(abi.encode(SET_PAUSED_TYPEHASH, newPaused, usedNonce))), signatures);
        opNonce = usedNonce + 1;
        paused = newPaused;
        emit PausedSet(newPaused, usedNonce);
    }

    /// @notice Allow or disallow `token` for `lock`. Signed over
    /// `SetTokenAllowed(token,allowed,opNonce)`. Releases are not affected.
    function setTokenAllowed(address token, bool allowed, bytes[] calldata signatures) external {
        uint256 usedNonce = opNonce;
        _requireQuorum(
            _hashTypedData(keccak256(abi.encode(SET_TOKEN_ALLOWED_TYPEHASH, token, allowed, usedNonce))), signatures
        );
        opNonce = usedNonce + 1;
        allowedTokens[token] = allowed;
        emit TokenAllowed(token, allowed, usedNonce);
    }

    // ---------------------------------------------------------------- views

    function getValidators() external view returns (address[] memory) {
        return _validators;
    }

    function isValidator(address account) public view returns (bool) {
        return account != address(0) && _memberOfSet[account] == setNonce;
    }

    /// @notice EIP-712 domain separator for this contract on the current chain id.
    function domainSeparator() public view returns (bytes32) {
        return keccak256(abi.encode(DOMAIN_TYPEHASH, NAME_HASH, VERSION_HASH, block.chainid, address(this)));
    }

    // ---------------------------------------------------------------- internals

    function _setValidators(address[] memory members, uint256 newThreshold, uint256 newSetNonce) private {
        if (newThreshold == 0 || newThreshold > members.length) revert BadThreshold(newThreshold, members.length);
        for (uint256 i = 0; i < members.length; ++i) {
            address member = members[i];
            // A repeat within this call already carries newSetNonce: that is a duplicate.
            if (member == address(0) || _memberOfSet[member] == newSetNonce) revert BadValidator(member);
            _memberOfSet[member] = newSetNonce;
        }
        _validators = members;
        threshold = newThreshold;
        setNonce = newSetNonce;
        emit ValidatorSetUpdated(newSetNonce, members, newThreshold);
    }

    function _hashTypedData(bytes32 structHash) private view returns (bytes32) {
        return keccak256(abi.encodePacked(hex"1901", domainSeparator(), structHash));
    }

    /// @dev Reverts unless every signature is valid, signers strictly ascend, each signer is a
    /// member of the current set, and there are at least `threshold` of them.
    function _requireQuorum(bytes32 digest, bytes[] calldata signatures) private view {
        uint256 count = signatures.length;
        if (count < threshold) revert QuorumNotMet(count, threshold);
        uint256 currentSet = setNonce;
        address previous = address(0);
        for (uint256 i = 0; i < count; ++i) {
            address signer = _recover(digest, signatures[i], i);
            if (signer <= previous) revert SignersNotAscending(i);
            if (_memberOfSet[signer] != currentSet) revert NotValidator(signer);
            previous = signer;
        }
    }

    function _recover(bytes32 digest, bytes calldata signature, uint256 index) private pure returns (address signer) {
        if (signature.length != 65) revert BadSignatureLength(index);
        bytes32 r = bytes32(signature[0:32]);
        uint256 s = uint256(bytes32(signature[32:64]));
        uint8 v = uint8(signature[64]);
        if (v != 27 && v != 28) revert BadSignatureV(index);
        if (s > HALF_N) revert HighS(index);
        signer = ecrecover(digest, v, r, bytes32(s));
        if (signer == address(0)) revert InvalidSignature(index);
    }

    function _balanceOf(address token) private view returns (uint256) {
        (bool ok, bytes memory data) = token.staticcall(abi.encodeWithSelector(0x70a08231, address(this)));
        if (!ok || data.length < 32) revert TokenTransferFailed(token);
        return abi.decode(data, (uint256));
    }

    /// @dev ERC-20 call that accepts tokens returning nothing (e.g. USDT) or `true`, and
    /// rejects a revert, `false`, malformed return data, or an address without code.
    function _safeCall(address token, bytes memory callData) private {
        if (token.code.length == 0) revert NotAContract(token);
        (bool ok, bytes memory data) = token.call(callData);
        if (!ok) revert TokenTransferFailed(token);
        if (data.length != 0 && (data.length < 32 || abi.decode(data, (uint256)) != 1)) {
            revert TokenTransferFailed(token);
        }
    }
}
