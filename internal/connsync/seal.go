package connsync

import (
	"bufio"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// The stream's security. The owner opens the stream and sends a hello
// sealed (AES-GCM) with the primary gossip key, bound to its random
// nonce; the peer opens it with any of its gossip keys (a key rotation
// in progress) and answers with its own nonce, sealed with the same key
// and bound to both nonces. Each direction then has its own key,
// HMAC-SHA256(gossip key, direction, both nonces), and every frame is
// sealed with it under a counter nonce: a frame cannot be replayed,
// reordered, or moved to another stream, and a replayed hello leads to
// a session nobody can speak in. A node without the gossip key gets
// nothing past the hello.

const (
	helloVersion  = 1
	nonceLen      = 16
	maxHello      = 512
	maxFrame      = 4 << 20
	handshakeWait = 5 * time.Second
)

var (
	aadHello = []byte("epconsole connsync hello 1")
	aadReply = []byte("epconsole connsync reply 1")
)

// secureConn is an encrypted, authenticated frame stream over conn.
type secureConn struct {
	conn    net.Conn
	r       *bufio.Reader
	wmu     sync.Mutex
	w       *bufio.Writer
	send    cipher.AEAD
	recv    cipher.AEAD
	sendCtr uint64
	recvCtr uint64
	rbuf    []byte
	wbuf    []byte
}

func newGCM(key []byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

func deriveKey(key []byte, dir string, cn, sn []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(dir))
	m.Write(cn)
	m.Write(sn)
	return m.Sum(nil)
}

func writeBlock(w io.Writer, b []byte) error {
	var l [2]byte
	binary.BigEndian.PutUint16(l[:], uint16(len(b)))
	if _, err := w.Write(l[:]); err != nil {
		return err
	}
	_, err := w.Write(b)
	return err
}

func readBlock(r io.Reader) ([]byte, error) {
	var l [2]byte
	if _, err := io.ReadFull(r, l[:]); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint16(l[:]))
	if n > maxHello {
		return nil, fmt.Errorf("handshake block of %d bytes", n)
	}
	b := make([]byte, n)
	_, err := io.ReadFull(r, b)
	return b, err
}

// seal seals plain with key under a random nonce: nonce || ciphertext.
func seal(key, plain, aad []byte) ([]byte, error) {
	g, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	n := make([]byte, g.NonceSize(), g.NonceSize()+len(plain)+g.Overhead())
	if _, err := rand.Read(n); err != nil {
		return nil, err
	}
	return g.Seal(n, n, plain, aad), nil
}

func open(key, b, aad []byte) ([]byte, error) {
	g, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	if len(b) < g.NonceSize() {
		return nil, errors.New("sealed block too short")
	}
	return g.Open(nil, b[:g.NonceSize()], b[g.NonceSize():], aad)
}

// clientHandshake runs the owner's side: hello carries the owner's part
// of the hello, the answer the peer's.
func clientHandshake(conn net.Conn, key, hello []byte) (*secureConn, []byte, error) {
	_ = conn.SetDeadline(time.Now().Add(handshakeWait))
	defer conn.SetDeadline(time.Time{})
	cn := make([]byte, nonceLen)
	if _, err := rand.Read(cn); err != nil {
		return nil, nil, err
	}
	sealed, err := seal(key, hello, append(append([]byte{}, aadHello...), cn...))
	if err != nil {
		return nil, nil, err
	}
	w := bufio.NewWriterSize(conn, 64<<10)
	if err := w.WriteByte(helloVersion); err != nil {
		return nil, nil, err
	}
	if _, err := w.Write(cn); err != nil {
		return nil, nil, err
	}
	if err := writeBlock(w, sealed); err != nil {
		return nil, nil, err
	}
	if err := w.Flush(); err != nil {
		return nil, nil, err
	}
	r := bufio.NewReaderSize(conn, 64<<10)
	sn := make([]byte, nonceLen)
	if _, err := io.ReadFull(r, sn); err != nil {
		return nil, nil, fmt.Errorf("reading the peer's answer: %w", err)
	}
	blk, err := readBlock(r)
	if err != nil {
		return nil, nil, fmt.Errorf("reading the peer's answer: %w", err)
	}
	answer, err := open(key, blk, append(append(append([]byte{}, aadReply...), cn...), sn...))
	if err != nil {
		return nil, nil, fmt.Errorf("the peer's answer does not open with the gossip key: %w", err)
	}
	sc, err := newSecureConn(conn, r, w, deriveKey(key, "owner->peer", cn, sn), deriveKey(key, "peer->owner", cn, sn))
	return sc, answer, err
}

// serverHandshake runs the peer's side: it opens the hello with one of
// keys and answers with what answer returns for it.
func serverHandshake(conn net.Conn, keys [][]byte, answer func(hello []byte) ([]byte, error)) (*secureConn, error) {
	_ = conn.SetDeadline(time.Now().Add(handshakeWait))
	defer conn.SetDeadline(time.Time{})
	r := bufio.NewReaderSize(conn, 64<<10)
	v, err := r.ReadByte()
	if err != nil {
		return nil, err
	}
	if v != helloVersion {
		return nil, fmt.Errorf("hello version %d, want %d", v, helloVersion)
	}
	cn := make([]byte, nonceLen)
	if _, err := io.ReadFull(r, cn); err != nil {
		return nil, err
	}
	blk, err := readBlock(r)
	if err != nil {
		return nil, err
	}
	aad := append(append([]byte{}, aadHello...), cn...)
	var key, hello []byte
	for _, k := range keys {
		if hello, err = open(k, blk, aad); err == nil {
			key = k
			break
		}
	}
	if key == nil {
		return nil, errors.New("the hello does not open with any gossip key")
	}
	reply, err := answer(hello)
	if err != nil {
		return nil, err
	}
	sn := make([]byte, nonceLen)
	if _, err := rand.Read(sn); err != nil {
		return nil, err
	}
	sealed, err := seal(key, reply, append(append(append([]byte{}, aadReply...), cn...), sn...))
	if err != nil {
		return nil, err
	}
	w := bufio.NewWriterSize(conn, 64<<10)
	if _, err := w.Write(sn); err != nil {
		return nil, err
	}
	if err := writeBlock(w, sealed); err != nil {
		return nil, err
	}
	if err := w.Flush(); err != nil {
		return nil, err
	}
	return newSecureConn(conn, r, w, deriveKey(key, "peer->owner", cn, sn), deriveKey(key, "owner->peer", cn, sn))
}

func newSecureConn(conn net.Conn, r *bufio.Reader, w *bufio.Writer, sendKey, recvKey []byte) (*secureConn, error) {
	s, err := newGCM(sendKey)
	if err != nil {
		return nil, err
	}
	rc, err := newGCM(recvKey)
	if err != nil {
		return nil, err
	}
	return &secureConn{conn: conn, r: r, w: w, send: s, recv: rc}, nil
}

// WriteFrame seals and sends one frame (flush: push it out now).
func (c *secureConn) WriteFrame(plain []byte, flush bool) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	var nonce [12]byte
	binary.BigEndian.PutUint64(nonce[4:], c.sendCtr)
	c.sendCtr++
	c.wbuf = c.send.Seal(append(c.wbuf[:0], 0, 0, 0, 0), nonce[:], plain, nil)
	binary.BigEndian.PutUint32(c.wbuf, uint32(len(c.wbuf)-4))
	if _, err := c.w.Write(c.wbuf); err != nil {
		return 0, err
	}
	if flush {
		if err := c.w.Flush(); err != nil {
			return 0, err
		}
	}
	return len(c.wbuf), nil
}

// ReadFrame reads and opens one frame; the result is valid until the
// next call.
func (c *secureConn) ReadFrame() ([]byte, error) {
	var l [4]byte
	if _, err := io.ReadFull(c.r, l[:]); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint32(l[:]))
	if n > maxFrame+c.recv.Overhead() || n < c.recv.Overhead() {
		return nil, fmt.Errorf("frame of %d bytes", n)
	}
	if cap(c.rbuf) < n {
		c.rbuf = make([]byte, n)
	}
	b := c.rbuf[:n]
	if _, err := io.ReadFull(c.r, b); err != nil {
		return nil, err
	}
	var nonce [12]byte
	binary.BigEndian.PutUint64(nonce[4:], c.recvCtr)
	c.recvCtr++
	plain, err := c.recv.Open(b[:0], nonce[:], b, nil)
	if err != nil {
		return nil, fmt.Errorf("frame %d does not authenticate: %w", c.recvCtr-1, err)
	}
	return plain, nil
}

func (c *secureConn) Close() error { return c.conn.Close() }
