// Package money prices metered usage exactly, without floating point.
//
// Quantities are exact decimals of units (for example 1234.5 GB). Prices are
// exact decimals expressed in a currency's minor unit, like Stripe's
// unit_amount_decimal: for USD the minor unit is the cent, so the price "0.1"
// means $0.001 per unit; for JPY it is the yen; for a three-decimal currency
// such as KWD it is the fils. All arithmetic uses
// github.com/shopspring/decimal, which has arbitrary precision, so no
// intermediate result can overflow.
//
// Rounding rule: every invoice Line is rounded on its own to an integer number
// of minor units, half-up (0.5 becomes 1, 0.4999999 becomes 0), and the total
// of an invoice is the sum of those rounded line amounts. The only place a
// value can overflow is the conversion of a rounded amount (or of the total)
// to int64; that is reported as ErrOverflow, never silently wrapped.
package money
