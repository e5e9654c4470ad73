// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

/// @title Ferry HTLC: hash time-locked escrow of the native coin or an ERC-20, for atomic swaps.
/// @notice `lock` escrows `amount` for `recipient` under a SHA-256 `hashlock` and an absolute
/// unix-time `timelock`. Before the timelock anyone may `redeem` with the 32-byte secret whose
/// SHA-256 is the hashlock, paying the recipient and publishing the secret in `Redeemed`; from
/// the timelock on anyone may `refund`, paying the sender back. Each HTLC settles exactly once.
/// @dev Ferry HTLC rules v1 (htlc/hashlock.py): secret = exactly 32 bytes, hashlock = sha256(secret),
/// timelock = block.timestamp bound (never a height), and
/// id = keccak256(abi.encode(sender, recipient, token, amount, hashlock, timelock, chainid, this)).
/// The caller passes the id and the contract recomputes it, so an id binds every parameter
/// (a mismatch reverts) and the same id cannot be locked twice, even after it settled.
/// SECURITY: value-moving functions are `nonReentrant` and checks-effects-interactions; the
/// redeem window [lock, timelock) and the refund window [timelock, inf) are disjoint.
/// Fee-on-transfer (or otherwise non-exact) ERC-20s are refused: `lock` measures the balance
/// delta and reverts with `AmountNotReceived` unless exactly `amount` arrived, because a swap
/// counterparty checks the locked amount against the agreed one.
/// A recipient (or sender) that cannot receive the payment blocks its own redeem (or refund);
/// the other party is unaffected: a blocked redeem leaves the refund open after the timelock.
contract HTLC {
    address private constant NATIVE = address(0);

    /// @notice Life cycle of one id: None -> Locked -> (Redeemed | Refunded). Terminal states
    /// are never left, and a settled id can never be locked again.
    enum State {
        None,
        Locked,
        Redeemed,
        Refunded
    }

    /// @dev Packed: sender, timelock and state share one slot, so settling writes one slot.
    struct Htlc {
        address sender;
        uint64 timelock;
        State state;
        address recipient;
        address token;
        uint256 amount;
        bytes32 hashlock;
    }

    // ---------------------------------------------------------------- events
    event Locked(
        bytes32 indexed id,
        address indexed sender,
        address indexed recipient,
        address token,
        uint256 amount,
        bytes32 hashlock,
        uint256 timelock
    );
    event Redeemed(bytes32 indexed id, bytes32 preimage);
    event Refunded(bytes32 indexed id);

    // ---------------------------------------------------------------- errors
    error Reentrancy();
    error ZeroAmount();
    error ZeroRecipient();
    error ValueMismatch(uint256 value, uint256 amount);
    error TimelockNotInFuture(uint256 timelock, uint256 blockTimestamp);
    error TimelockOutOfRange(uint256 timelock);
    error IdMismatch(bytes32 id, bytes32 expected);
    error HtlcExists(bytes32 id);
    error AmountNotReceived(uint256 amount, uint256 received);
    error NotAContract(address token);
    error TokenTransferFailed(address token);
    error NativeTransferFailed(address to);
    error UnknownHtlc(bytes32 id);
    error AlreadySettled(bytes32 id, State state);
    error BadPreimageLength(uint256 length);
    error WrongPreimage(bytes32 id);
    error Expired(bytes32 id, uint256 timelock);
    error NotExpired(bytes32 id, uint256 timelock);

    // ---------------------------------------------------------------- state
    mapping(bytes32 => Htlc) private _htlcs;
    uint256 private _guard = 1;

    modifier nonReentrant() {
        if (_guard != 1) revert Reentrancy();
        _guard = 2;
        _;
        _guard = 1;
    }

    // ---------------------------------------------------------------- entry points

    /// @notice Escrow `amount` of `token` (address(0) = native coin, sent as msg.value) for
    /// `recipient` until `timelock`, redeemable with the preimage of `hashlock`.
    /// @param id must equal `computeId(msg.sender, recipient, token, amount, hashlock, timelock)`.
    /// @param timelock absolute unix time (seconds); redeem is possible while
    /// block.timestamp < timelock, refund once block.timestamp >= timelock.
    /// @return the id, as passed.
    function lock(bytes32 id, address recipient, address token, uint256 amount, bytes32 hashlock, uint256 timelock)
        external
        payable
        nonReentrant
        returns (bytes32)
    {
        if (recipient == address(0)) revert ZeroRecipient();
        if (amount == 0) revert ZeroAmount();
        if (timelock <= block.timestamp) revert TimelockNotInFuture(timelock, block.timestamp);
        if (timelock > type(uint64).max) revert TimelockOutOfRange(timelock);
        bytes32 expected = computeId(msg.sender, recipient, token, amount, hashlock, timelock);
        if (id != expected) revert IdMismatch(id, expected);
        if (_htlcs[id].state != State.None) revert HtlcExists(id);
        if (msg.value != (token == NATIVE ? amount : 0)) {
            revert ValueMismatch(msg.value, token == NATIVE ? amount : 0);
        }

        _htlcs[id] = Htlc({
            sender: msg.sender,
            timelock: uint64(timelock),
            state: State.Locked,
            recipient: recipient,
            token: token,
            amount: amount,
            hashlock: hashlock
        });

        if (token != NATIVE) {
            // Balance delta, not the argument, is what arrived; anything else reverts (and
            // with it the record above). nonReentrant covers the call.
            uint256 before = _balanceOf(token);
            _safeCall(token, abi.encodeWithSelector(0x23b872dd, msg.sender, address(this), amount));
            uint256 received = _balanceOf(token) - before;
            if (received != amount) revert AmountNotReceived(amount, received);
        }
        emit Locked(id, msg.sender, recipient, token, amount, hashlock, timelock);
        return id;
    }

    /// @notice Pay HTLC `id` to its recipient, revealing `preimage`. Anyone may call.
    /// @param preimage the secret: exactly 32 bytes with sha256(preimage) == hashlock.
    function redeem(bytes32 id, bytes calldata preimage) external nonReentrant {
        Htlc storage h = _requireLocked(id);
        if (preimage.length != 32) revert BadPreimageLength(preimage.length);
        if (sha256(preimage) != h.hashlock) revert WrongPreimage(id);
        if (block.timestamp >= h.timelock) revert Expired(id, h.timelock);

        h.state = State.Redeemed;
        _pay(h.token, h.recipient, h.amount);
        emit Redeemed(id, bytes32(preimage));
    }

    /// @notice Pay HTLC `id` back to its sender once its timelock has passed. Anyone may call.
    function refund(bytes32 id) external nonReentrant {
        Htlc storage h = _requireLocked(id);
        if (block.timestamp < h.timelock) revert NotExpired(id, h.timelock);

        h.state = State.Refunded;
        _pay(h.token, h.sender, h.amount);
        emit Refunded(id);
    }

    // ---------------------------------------------------------------- views

    /// @notice The HTLC stored under `id` (all zero with state None if there is none).
    function htlcs(bytes32 id)
        external
        view
        returns (
            address sender,
            address recipient,
            address token,
            uint256 amount,
            bytes32 hashlock,
            uint256 timelock,
            State state
        )
    {
        Htlc storage h = _htlcs[id];
        return (h.sender, h.recipient, h.token, h.amount, h.hashlock, h.timelock, h.state);
    }

    /// @notice The id `lock` requires for these parameters on this chain and contract:
    /// keccak256(abi.encode(sender, recipient, token, amount, hashlock, timelock, chainid, this)).
    function computeId(
        address sender,
        address recipient,
        address token,
        uint256 amount,
        bytes32 hashlock,
        uint256 timelock
    ) public view returns (bytes32) {
        return keccak256(
            abi.encode(sender, recipient, token, amount, hashlock, timelock, block.chainid, address(this))
        );
    }

    // ---------------------------------------------------------------- internals

    function _requireLocked(bytes32 id) private view returns (Htlc storage h) {
        h = _htlcs[id];
        if (h.state == State.None) revert UnknownHtlc(id);
        if (h.state != State.Locked) revert AlreadySettled(id, h.state);
    }

    function _pay(address token, address to, uint256 amount) private {
        if (token == NATIVE) {
            (bool ok,) = to.call{value: amount}("");
            if (!ok) revert NativeTransferFailed(to);
        } else {
            _safeCall(token, abi.encodeWithSelector(0xa9059cbb, to, amount));
        }
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
