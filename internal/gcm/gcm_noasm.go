//go:build !amd64 || purego

package gcm

// useAsm is false: this build has no assembly path.
const useAsm = false

func sealAsm(k *asmKeys, nonce, dst, plaintext, aad []byte, tag *[16]byte) {
	panic("gcm: assembly path called in a build without it")
}

func tagAsm(k *asmKeys, nonce, ct, aad []byte, tag *[16]byte) {
	panic("gcm: assembly path called in a build without it")
}

func ctrAsm(k *asmKeys, nonce, dst, ct []byte) {
	panic("gcm: assembly path called in a build without it")
}

const maxShortOpen = 0

func openShortAsm(k *asmKeys, nonce, dst, ct, aad, tag []byte) bool {
	panic("gcm: assembly path called in a build without it")
}

const maxOnePassAAD = 0

func openAsm(k *asmKeys, nonce, dst, ct, aad, tag []byte) bool {
	panic("gcm: assembly path called in a build without it")
}

const maxShortSeal = 0

func sealShortAsm(k *asmKeys, nonce, dst, pt, aad []byte, tagLen int) {
	panic("gcm: assembly path called in a build without it")
}
