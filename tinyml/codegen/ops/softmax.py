"""SOFTMAX (int8 in, int8 out): eng_softmax_s8, TFLite's reference fixed-point kernel."""

from __future__ import annotations

from tinyml.codegen.arithmetic import softmax_scaling
from tinyml.codegen.ctext import c_struct
from tinyml.codegen.layer import quant, unsupported
from tinyml.codegen.ops.elementwise import ElementWise


class Softmax(ElementWise):
    """In place over its input; the constants are the reference Prepare's (arithmetic.softmax_scaling)."""

    kernel = "softmax"

    def lower(self) -> None:
        x = self.require_dtype(self.op.inputs[0], ("int8",))
        y = self.require_dtype(self.op.outputs[0], ("int8",))
        in_scale, _ = quant(x)
        out_scale, out_zp = quant(y)
        if out_zp != -128 or abs(out_scale - 1 / 256) > 1e-9:
            # TFLite's Prepare requires exactly this; the reference kernel writes 1/256 units from -128.
            raise unsupported(self.op, f"output scale {out_scale:g} / zero point {out_zp} (TFLite needs 1/256, -128)")
        depth = x.shape[-1]
        mult, shift, diff_min = softmax_scaling(float(self.op.options.get("beta", 1.0)), in_scale)
        self.fields = dict(
            rows=x.size // depth, depth=depth, input_multiplier=mult, input_left_shift=shift, diff_min=diff_min
        )
        self.decls = c_struct("eng_softmax_t", self.name, self.fields)
        self.call = f"eng_softmax_s8(&{self.name}, (const int8_t *){{in0}}, (int8_t *){{out0}});"
