package transfer

// piece is a byte range of one input that lies in one block.
type piece struct {
	input  int   // index into the inputs
	offset int64 // within the input
	length int64
}

// span is one block of the stream: its size and the pieces filling it,
// in order.
type span struct {
	size   int64
	pieces []piece
}

// placed is one segment of an input: a byte range of a block.
type placed struct {
	block          int
	offset, length int64
}

// layout cuts the concatenation of inputs of the given sizes into blocks
// of blockSize bytes, as manifest.Packer does (small files share blocks;
// a directory entry, size 0 here, takes no room), and returns the blocks
// and where each input's bytes went. It is a pure function of the sizes,
// which is what lets an interrupted put find, without reading anything,
// the blocks it already stored.
func layout(sizes []int64, blockSize int64) ([]span, [][]placed) {
	var blocks []span
	segs := make([][]placed, len(sizes))
	var pos int64
	for k, size := range sizes {
		for off := int64(0); off < size; {
			b, in := int(pos/blockSize), pos%blockSize
			n := min(size-off, blockSize-in)
			if b == len(blocks) {
				blocks = append(blocks, span{})
			}
			blocks[b].size += n
			blocks[b].pieces = append(blocks[b].pieces, piece{input: k, offset: off, length: n})
			segs[k] = append(segs[k], placed{block: b, offset: in, length: n})
			off += n
			pos += n
		}
	}
	return blocks, segs
}
